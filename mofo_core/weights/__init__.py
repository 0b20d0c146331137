"""Weight files: safetensors reading and checks, the DiT loader, telling files apart, downloads, and the tiny
random stand-ins.
"""

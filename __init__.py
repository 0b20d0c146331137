"""ComfyUI-ModalityForcing: ComfyUI loads this package; the nodes are imported only when ComfyUI asks.

Outside ComfyUI (tests, `python -m mofo_core`) importing this file has no effect beyond two names.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes import MofoExtension

    return MofoExtension()

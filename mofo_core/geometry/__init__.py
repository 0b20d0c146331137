"""3D from depth: point clouds, meshes, normals, their file writers, and preview rendering."""

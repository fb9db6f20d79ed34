"""Reading and writing: meshes, landmarks, manifests, atomic file output."""

"""graphc_runtime: run artifacts exported by graphc, with numpy and ctypes only.

    import graphc_runtime
    predict = graphc_runtime.load("digits_artifact")
    probabilities = predict(x)          # x: (batch, 64) float32
"""
from graphc_runtime._artifact import FORMAT_VERSION, Artifact, ArtifactError, load, read_manifest

__version__ = "0.1.0"
__all__ = ["load", "Artifact", "ArtifactError", "read_manifest", "FORMAT_VERSION"]

"""The exceptions graphc raises for its users.

Every error a user can cause is one of these, never an ``assert``: they carry a message that
names the op or layer, the shapes and dtypes involved and, where known, the user's source line.
"""


class GraphcError(Exception):
    """Base class of every error graphc raises on purpose."""


class ShapeError(GraphcError, ValueError):
    """Shapes that do not fit together (found when the graph is built or at call time)."""


class DTypeError(GraphcError, TypeError):
    """A dtype an op or a compiled function cannot take."""


class InputError(GraphcError, ValueError):
    """Bad arguments to a public function: unknown names, wrong kinds of values."""


class GradientError(GraphcError, ValueError):
    """A gradient that cannot be taken (disconnected input, non-differentiable op)."""


class CompileError(GraphcError):
    """Lowering or native compilation failed; this is a bug in graphc, please report it."""


class ModelFileError(GraphcError, ValueError):
    """A saved model, checkpoint or artifact that is corrupt, truncated or of the wrong kind."""

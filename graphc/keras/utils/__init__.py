"""``keras.utils``: ``to_categorical``, ``normalize``, ``get_file``, ``Progbar``,
``plot_history`` (training curves to PNG), ``plot_model``/``model_to_dot`` (layer graph)."""
from graphc.keras.utils.data_utils import ChecksumError, DownloadError, get_file, validate_file
from graphc.keras.utils.generic_utils import Progbar
from graphc.keras.utils.np_utils import normalize, to_categorical
from graphc.keras.utils.plotting import plot_history
from graphc.keras.utils.vis_utils import model_to_dot, plot_model

__all__ = ["to_categorical", "normalize", "get_file", "validate_file", "DownloadError", "ChecksumError",
           "Progbar", "plot_history", "plot_model", "model_to_dot"]

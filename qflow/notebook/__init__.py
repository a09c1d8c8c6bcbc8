"""Notebooks as QFlow reads and runs them, without IPython.

``document`` reads a notebook file (its ``parameters`` cell, its ``%%qflow_step`` cells);
``cells`` finds the names a cell reads and binds; ``session`` runs step cells on the run
pipeline (keys, the store, run events to the recorder, trackers and views). The Jupyter
extension (``jupyter_ext``) only adds the IPython and widget glue.
"""

from qflow.notebook.document import (
    STEP_MAGIC,
    Parameter,
    StepSource,
    cell_error,
    failing_line,
    parameter_list,
    parameter_names,
    parameters,
    parameters_cell,
    read,
    source_index,
    step_cells,
    step_graph,
    step_of_cell,
    typed,
    working_folder,
)

__all__ = ["STEP_MAGIC", "Parameter", "StepSource", "cell_error", "failing_line",
           "parameter_list", "parameter_names", "parameters", "parameters_cell", "read",
           "source_index", "step_cells", "step_graph", "step_of_cell", "typed", "working_folder"]

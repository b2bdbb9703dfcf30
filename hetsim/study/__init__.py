"""The paper study (``hetsim reproduce paper``): prefill::decode device pairs priced over a grid
of models, precisions, shapes, SLAs and input sets, the paper's facts and orderings checked
against them, and the reasons computed from the same frames. Pure: no I/O; reaches the solver
(OR-Tools) only through :mod:`hetsim.plan` (the worked example, E1)."""

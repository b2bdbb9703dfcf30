"""Ctrl-C during a solve stops it and is reported as an interruption, never as an
infeasible fleet (SCIP catches SIGINT itself and would otherwise return quietly)."""

import os
import signal
import threading

import numpy as np
import pytest
from ortools.linear_solver import pywraplp

from hetsim.plan.solver import run_solver


def _hard_problem() -> pywraplp.Solver:
    """A multi-dimensional knapsack SCIP needs many seconds to prove optimal."""
    rng = np.random.default_rng(0)
    solver = pywraplp.Solver.CreateSolver("SCIP")
    x = [solver.IntVar(0, 10, f"x{i}") for i in range(300)]
    for _ in range(60):
        w = rng.integers(1, 100, len(x))
        solver.Add(sum(int(w[i]) * x[i] for i in range(len(x))) <= int(w.sum() * 2.3))
    v = rng.integers(1, 100, len(x))
    solver.Maximize(sum(int(v[i]) * x[i] for i in range(len(x))))
    solver.SetTimeLimit(20_000)
    return solver


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
def test_ctrl_c_during_a_solve_raises_keyboard_interrupt_promptly():
    solver = _hard_problem()
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        run_solver(solver)
    assert solver.wall_time() < 20_000  # SCIP's own clock (ms): stopped by the Ctrl-C, not by its 20 s limit


def test_a_solve_without_interruption_returns_its_status():
    solver = pywraplp.Solver.CreateSolver("SCIP")
    x = solver.IntVar(0, 3, "x")
    solver.Maximize(x)
    assert run_solver(solver) == pywraplp.Solver.OPTIMAL

"""What a twin pair's solver back end carries from one solve to the next (the Newton warm
starts), saved and restored: :class:`~instruments.sim.bench.SimBench` keeps it in its
checkpoints, so that a restored bench solves to the same last bit as the saved one would
have, and puts it back after a look that the bench without node capacitance would not take
(:meth:`SimBench._look_before_write`)."""

from __future__ import annotations

from .simdaq import _saved_array

__all__ = ["solver_memory", "solver_memory_loader"]


def solver_memory(backend) -> dict:
    """What the solver back end carries from one solve to the next: the Newton warm starts
    (MOSFET kernels, the general solver). A restored bench needs them to solve to the same
    last bit as the saved one would have; the linear kernels solve directly, from the state."""
    from .kernel_backends import MosfetKernelBackend
    from .twin import ReferenceBackend

    if isinstance(backend, MosfetKernelBackend):
        s = backend.solver
        return {"free_warm": s._free.warm, "free_v": s._free.v.copy(),
                "clamped_warm": s._clamped.warm, "clamped_v": s._clamped.v.copy()}
    if isinstance(backend, ReferenceBackend):
        return {"free_v": None if backend._last_free is None else backend._last_free.copy(),
                "clamped_v": None if backend._last_clamped is None else backend._last_clamped.copy()}
    return {}


def solver_memory_loader(backend, saved: dict, n_nodes: int):
    """Check what :func:`solver_memory` saved and return what restores it."""
    from .kernel_backends import MosfetKernelBackend
    from .twin import ReferenceBackend

    def nodes(name):
        return None if saved.get(name) is None else _saved_array(saved, name, (n_nodes,), "solver")

    if isinstance(backend, MosfetKernelBackend):
        s = backend.solver
        warm = [(st, bool(saved[f"{twin}_warm"]), nodes(f"{twin}_v"))
                for st, twin in ((s._free, "free"), (s._clamped, "clamped"))]

        def load() -> None:
            for st, is_warm, v in warm:
                st.warm = is_warm
                st.v[:] = v
        return load
    if isinstance(backend, ReferenceBackend):
        free, clamped = nodes("free_v"), nodes("clamped_v")

        def load() -> None:
            backend._last_free, backend._last_clamped = free, clamped
        return load
    return lambda: None

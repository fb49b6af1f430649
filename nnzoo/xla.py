"""The XLA programs nnzoo compiles for its checks on a CPU, without batch-grouped convolutions.

JAX computes a grouped (depthwise) convolution's kernel gradient as a *batch-grouped*
convolution. XLA's CPU compiler can only run those expanded into dense C x C convolutions (its
pass `convolution_group_converter`), and the same pass also expands every float64 grouped
convolution, which XLA's CPU then runs through its naive loop emitter: a 5x5 layer of 816
channels on a 4x4 map took 1.5 s forward in float64, 0.09 ms unexpanded. `without_batch_groups`
rewrites each batch-grouped convolution of a traced program as the equivalent feature-grouped
one (the lhs batch groups moved into its feature dimension: the same products and sums,
measured bit-identical), so that no program needs the pass and `XLA_CPU_OPTIONS` can turn it off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

#: `jax.jit` options for the checks' programs on a CPU: no group expansion (above), and XLA's
#: memory-optimized scheduler, which frees each operation's scratch before the next where the
#: default keeps much of it alive at once (21 gradient and numeric checks of eight families:
#: 115 -> 107 s, 5.7 -> 3.5 GB).
XLA_CPU_OPTIONS: dict[str, Any] = {
    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
    "xla_disable_hlo_passes": "convolution-group-converter",
}

#: Call primitives whose body is inlined by the rewrite; any other primitive with a body (scan,
#: cond, while, custom derivatives) is bound as it is, and must hold no batch-grouped convolution.
_INLINED = ("pjit", "jit", "closed_call", "core_call")


def feature_grouped(lhs: Any, rhs: Any, *, batch_group_count: int, feature_group_count: int,
                    dimension_numbers: Any, **params: Any) -> Any:
    """`conv_general_dilated(lhs, rhs, ..., batch_group_count=G)` as a convolution with
    `feature_group_count=G`: XLA splits the lhs batch B into G consecutive groups, so batch
    `g * B/G + b` becomes feature `g * F + f` of a batch of B/G."""
    import jax.numpy as jnp
    from jax import lax

    if feature_group_count != 1:  # XLA allows one kind of group per convolution
        raise ValueError("a convolution with both batch and feature groups")
    g = batch_group_count
    b, f = dimension_numbers.lhs_spec[:2]
    x = jnp.moveaxis(lhs, (b, f), (-2, -1))
    *rest, batch, features = x.shape
    x = jnp.moveaxis(x.reshape(*rest, g, batch // g, features), -3, -2)
    x = jnp.moveaxis(x.reshape(*rest, batch // g, g * features), (-2, -1), (b, f))
    return lax.conv_general_dilated_p.bind(x, rhs, batch_group_count=1, feature_group_count=g,
                                           dimension_numbers=dimension_numbers, **params)


def _batch_grouped(eqn: Any) -> bool:
    from jax import lax

    return eqn.primitive is lax.conv_general_dilated_p and eqn.params["batch_group_count"] > 1


def _nested(jaxpr: Any) -> Iterator[Any]:
    """Every equation of `jaxpr` and of the bodies inside it."""
    from jax.extend.core import jaxprs_in_params

    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jaxprs_in_params(eqn.params):
            yield from _nested(sub)


def _evaluate(jaxpr: Any, consts: list[Any], args: list[Any]) -> list[Any]:
    """Run `jaxpr` on `args` (under the caller's trace), inlining call bodies and rewriting
    batch-grouped convolutions."""
    from jax.extend.core import Literal, jaxprs_in_params

    env: dict[Any, Any] = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))

    def read(v: Any) -> Any:
        return v.val if isinstance(v, Literal) else env[v]

    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        prim = eqn.primitive
        if _batch_grouped(eqn):
            outs = [feature_grouped(*ins, **eqn.params)]
        elif prim.name in _INLINED:
            body = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
            outs = _evaluate(getattr(body, "jaxpr", body), list(getattr(body, "consts", [])), ins)
        else:
            if any(_batch_grouped(e) for sub in jaxprs_in_params(eqn.params) for e in _nested(sub)):
                raise NotImplementedError(
                    f"a batch-grouped convolution inside {prim.name}: nnzoo.xla rewrites them "
                    f"only outside such bodies")
            outs = prim.bind(*ins, **prim.get_bind_params(eqn.params))  # as jax's eval_jaxpr
            outs = outs if prim.multiple_results else [outs]
        env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


def without_batch_groups(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, traced and run again with its batch-grouped convolutions rewritten as feature-grouped
    ones (`feature_grouped`): what `jax.jit` of it compiles needs no group expansion."""
    import jax

    def rewritten(*args: Any) -> Any:
        closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
        outs = _evaluate(closed.jaxpr, list(closed.consts), jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(shapes), outs)

    return rewritten


def xla_jit(fn: Callable[..., Any]) -> Any:
    """`jax.jit(fn)` for nnzoo's checks: on a CPU, without batch-grouped convolutions and
    compiled with XLA_CPU_OPTIONS; other devices' compilers keep their defaults."""
    import jax

    if jax.default_backend() != "cpu":
        return jax.jit(fn)
    return jax.jit(without_batch_groups(fn), compiler_options=XLA_CPU_OPTIONS)

"""Training state created directly in its sharded layout.

eval_shape(init) gives the abstract state; the model's logical axis names, mapped through the
config's rule table, give each leaf a NamedSharding; jit(init, out_shardings=...) then builds every
array on the devices that own it, so no full copy of the model ever sits on one device. The same
abstract state with shardings is the restore target for checkpoints, so a checkpoint restores
onto any mesh.
"""

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bertjax import optim, sharding
from bertjax.errors import UserError
from bertjax.models.bert import BertConfig, BertForPreTraining


@flax.struct.dataclass
class TrainState:
    """Everything a checkpoint holds. `params` is a plain nested dict of arrays.

    `nonfinite_steps` counts updates skipped because the gradients were NaN/Inf, and
    `consecutive_nonfinite` how many of the latest steps in a row were skipped (the counters of
    optax.apply_if_finite, kept as fields of their own: `apply_gradients`).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    nonfinite_steps: jax.Array
    consecutive_nonfinite: jax.Array


def apply_gradients(
    state: TrainState, grads: Any, tx: optax.GradientTransformation
) -> tuple[TrainState, jax.Array]:
    """One update of `tx` through optax.apply_if_finite (`optim.skip_nonfinite`): gradients that
    hold a NaN/Inf (as a NaN/Inf loss gives) leave the parameters and optimizer state unchanged
    and are counted. The step advances either way, so the data stream stays aligned with it.
    Returns the new state and whether the update was applied (a bool scalar).

    The checkpointed TrainState holds `tx`'s own state and apply_if_finite's two counters as
    fields (the layout checkpoints had before apply_if_finite), so the guard's state is put
    together around them here.
    """
    guarded = optax.ApplyIfFiniteState(
        notfinite_count=state.consecutive_nonfinite,
        last_finite=jnp.array(True),
        total_notfinite=state.nonfinite_steps,
        inner_state=state.opt_state,
    )
    updates, guarded = optim.skip_nonfinite(tx).update(grads, guarded, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        opt_state=guarded.inner_state,
        nonfinite_steps=guarded.total_notfinite,
        consecutive_nonfinite=guarded.notfinite_count,
    )
    return new_state, guarded.last_finite


@dataclasses.dataclass(frozen=True)
class StateSetup:
    """Static pieces that go with a TrainState: how to rebuild the model and where leaves live."""

    graphdef: nnx.GraphDef
    shardings: TrainState  # a TrainState whose leaves are NamedShardings
    abstract_state: TrainState  # ShapeDtypeStructs carrying those shardings (restore target)
    mesh: Mesh
    rules: tuple  # logical axis name -> mesh axes

    def model(self, params: Any) -> BertForPreTraining:
        """The NNX model bound to `params` (cheap; used inside jitted functions)."""
        return nnx.merge(self.graphdef, params)

    def pretraining_outputs(self, params: Any, batch: dict, rngs: nnx.Rngs | None = None) -> dict:
        """The pretraining model's outputs on `batch` (BERT: MLM and NSP logits; ELECTRA: also
        the discriminator's) under the activation constraints; dropout (and ELECTRA's sampling)
        from `rngs` when given. Use inside jitted functions."""
        with self.activation_sharding():
            return self.model(params).pretraining_outputs(batch, rngs)

    @contextlib.contextmanager
    def activation_sharding(self):
        """Inside a jitted function: the model's activation constraints (logical names such as
        ('batch', 'length', 'embed')) take effect on this mesh through the rule table."""
        with (
            jax.sharding.use_abstract_mesh(self.mesh.abstract_mesh),
            nn.logical_axis_rules(self.rules),
        ):
            yield


# seed -> a model whose parameter (and dropout) streams that seed starts, e.g. a fine-tuning
# model with its task head; a BertConfig stands for its BertForPreTraining.
ModelFactory = Callable[[int], nnx.Module]


def _model_factory(model: BertConfig | ModelFactory) -> ModelFactory:
    if isinstance(model, BertConfig):
        return lambda seed: BertForPreTraining(model, rngs=nnx.Rngs(params=seed, dropout=seed))
    return model


def _init_fn(model: BertConfig | ModelFactory, tx: optax.GradientTransformation, seed: int):
    make_model = _model_factory(model)

    def init() -> TrainState:
        params = nnx.state(make_model(seed), nnx.Param).to_pure_dict()
        # No weakly typed leaf: the train step returns strong types, so a parameter set from a
        # Python float would change type after step 1 and compile the step twice, and a fresh
        # state would not match a restored one (ELECTRA's bias did: on a 20-step CPU toy run the
        # two compiles took 24.9 s, one takes 14.4 s).
        params = jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), params)
        zero = jnp.zeros((), jnp.int32)
        return TrainState(
            step=zero,
            params=params,
            opt_state=tx.init(params),
            nonfinite_steps=zero,
            consecutive_nonfinite=zero,
        )

    return init


def state_shardings(
    model: BertConfig | ModelFactory, tx: optax.GradientTransformation, mesh: Mesh, rules
) -> tuple[nnx.GraphDef, TrainState, TrainState]:
    """GraphDef of the model, the NamedSharding of every TrainState leaf (a parameter without
    logical axis names is replicated), and the TrainState's shapes and dtypes (no array made)."""
    make_model = _model_factory(model)
    abstract_model = nnx.eval_shape(lambda: make_model(0))
    graphdef, abstract_params = nnx.split(abstract_model, nnx.Param)
    logical_specs = nnx.get_partition_spec(abstract_params).to_pure_dict()
    param_shardings = sharding.logical_to_mesh_shardings(logical_specs, mesh, rules)
    abstract_params = abstract_params.to_pure_dict()
    _check_divisible(abstract_params, param_shardings)
    replicated = NamedSharding(mesh, PartitionSpec())
    abstract_opt_state = jax.eval_shape(tx.init, abstract_params)
    opt_shardings = optax.tree_map_params(
        tx,
        lambda _, leaf_sharding: leaf_sharding,
        abstract_opt_state,
        param_shardings,
        transform_non_params=lambda _: replicated,
        is_leaf=lambda x: isinstance(x, NamedSharding),
    )
    shardings = TrainState(
        step=replicated,
        params=param_shardings,
        opt_state=opt_shardings,
        nonfinite_steps=replicated,
        consecutive_nonfinite=replicated,
    )
    count = jax.ShapeDtypeStruct((), jnp.int32)
    shapes = TrainState(
        step=count,
        params=abstract_params,
        opt_state=abstract_opt_state,
        nonfinite_steps=count,
        consecutive_nonfinite=count,
    )
    return graphdef, shardings, shapes


def _check_divisible(abstract_params: Any, param_shardings: Any) -> None:
    """A one-line UserError, before anything is compiled, for a parameter its sharding cannot
    split evenly (e.g. a pretrained 30,522-token vocabulary over tensor=4)."""
    leaves = jax.tree_util.tree_leaves_with_path(abstract_params)
    for (path, leaf), leaf_sharding in zip(leaves, jax.tree.leaves(param_shardings), strict=True):
        for dim, axes in enumerate(leaf_sharding.spec):
            axes = axes if isinstance(axes, tuple) else (axes,)
            ways = int(np.prod([leaf_sharding.mesh.shape[axis] for axis in axes if axis]))
            if leaf.shape[dim] % ways:
                name = "/".join(str(getattr(key, "key", key)) for key in path)
                raise UserError(
                    f"parameter {name} {tuple(leaf.shape)} cannot be split "
                    f"{leaf_sharding.spec} on mesh {dict(leaf_sharding.mesh.shape)}: dimension "
                    f"{dim} ({leaf.shape[dim]}) is not divisible by {ways}; change mesh_shape, or "
                    "map its logical axis to None in logical_axis_rules (in a config file: the "
                    "command line cannot override a list)"
                )


def create_train_state(
    model: BertConfig | ModelFactory,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    rules,
    seed: int,
) -> tuple[TrainState, StateSetup]:
    """A freshly initialised, sharded TrainState and its StateSetup. `model`: a BertConfig
    (pretraining) or a ModelFactory."""
    setup = state_setup(model, tx, mesh, rules)
    return init_train_state(setup, model, tx, seed), setup


def init_train_state(
    setup: StateSetup, model: BertConfig | ModelFactory, tx: optax.GradientTransformation, seed
) -> TrainState:
    """A freshly initialised TrainState of `model`, every array created on the devices that own
    it in `setup`'s layout (jit(init, out_shardings)): no full copy on one device."""
    return jax.jit(_init_fn(model, tx, seed), out_shardings=setup.shardings)()


def state_setup(
    model: BertConfig | ModelFactory, tx: optax.GradientTransformation, mesh: Mesh, rules
) -> StateSetup:
    """StateSetup without creating any array (what a restore needs)."""
    # One abstract model gives the layout and the shapes (each abstract BertForPreTraining costs
    # ~0.6 s of Python on the 2-core CPU machine, even at BERT-tiny size).
    graphdef, shardings, abstract = state_shardings(model, tx, mesh, rules)
    abstract = jax.tree.map(
        lambda leaf, leaf_sharding: jax.ShapeDtypeStruct(
            leaf.shape, leaf.dtype, sharding=leaf_sharding
        ),
        abstract,
        shardings,
    )
    return StateSetup(
        graphdef=graphdef,
        shardings=shardings,
        abstract_state=abstract,
        mesh=mesh,
        rules=tuple(tuple(rule) for rule in rules),
    )

"""Learners' prunable kinds of a vision transformer (notebook 09): transformer_kinds(model) -> {weight name: kind}."""

import re
from collections import OrderedDict

from torch import nn

from learners import Suite

suite = Suite("09.prunable-kinds")

LAYER_KINDS = {"embed": "embedding", "qkv": "attention", "proj": "attention", "fc1": "mlp", "fc2": "mlp",
               "head": "output"}


def by_layer_name(model):
    kinds = {}
    for name, p in model.named_parameters():
        layer = name.split(".")[-2] if "." in name else name
        if name.endswith(".weight") and layer in LAYER_KINDS:
            kinds[name] = LAYER_KINDS[layer]
    return kinds


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"lthkit's own answer")
def asks_the_model(model):
    return model.prunable_kinds()


@suite.wrong(r"lthkit's own answer")
def asks_lthkit(model):
    from lthkit.models import prunable_layers

    return prunable_layers(model)


@suite.wrong(r"biases")
def with_biases(model):
    kinds = by_layer_name(model)
    return kinds | {n.replace(".weight", ".bias"): k for n, k in kinds.items()}


@suite.wrong(r"layer norms")
def every_weight_named_weight(model):
    kinds = {}
    for name, _ in model.named_parameters():
        if not name.endswith("weight"):
            continue
        layer = name.split(".")[-2]
        kinds[name] = LAYER_KINDS.get(layer, "mlp")
    return kinds


@suite.wrong(r"class token or the positions")
def every_tensor_of_two_or_more_dimensions(model):
    kinds = {}
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            kinds[name] = LAYER_KINDS.get(name.split(".")[-2] if "." in name else name, "embedding")
    return kinds


@suite.wrong(r"two blocks only")
def names_two_blocks(model):
    kinds = {"embed.weight": "embedding", "head.weight": "output"}
    for i in range(2):
        kinds[f"blocks.{i}.qkv.weight"] = "attention"
        kinds[f"blocks.{i}.proj.weight"] = "attention"
        kinds[f"blocks.{i}.fc1.weight"] = "mlp"
        kinds[f"blocks.{i}.fc2.weight"] = "mlp"
    return kinds


@suite.wrong(r"every weight of block 1 \(of 2\)")
def first_block_only(model):
    kinds = {"embed.weight": "embedding", "head.weight": "output"}
    for name, _ in model.blocks[0].named_parameters():
        if name.endswith("weight") and "norm" not in name:
            kinds["blocks.0." + name] = "attention" if name.startswith(("qkv", "proj")) else "mlp"
    return kinds


@suite.wrong(r"patch embedding")
def blocks_and_head_only(model):
    return {n: k for n, k in by_layer_name(model).items() if n.startswith(("blocks", "head"))}


@suite.wrong(r"the head \(head\.weight\) is pruned too")
def forgets_the_head(model):
    return {n: k for n, k in by_layer_name(model).items() if not n.startswith("head")}


@suite.wrong(r"output layer")
def head_as_mlp(model):
    return by_layer_name(model) | {"head.weight": "mlp"}


@suite.wrong(r"'fc' is not a kind")
def head_as_lenets_fc(model):
    return by_layer_name(model) | {"head.weight": "fc"}


@suite.wrong(r"are attention")
def proj_as_mlp(model):
    kinds = by_layer_name(model)
    return kinds | {n: "mlp" for n in kinds if n.endswith("proj.weight")}


@suite.wrong(r"block's mlp")
def every_block_layer_as_attention(model):
    kinds = by_layer_name(model)
    return kinds | {n: "attention" for n in kinds if n.startswith("blocks")}


@suite.wrong(r"lowercase")
def capitalised(model):
    return {n: k.capitalize() for n, k in by_layer_name(model).items()}


@suite.wrong(r"lowercase")
def in_capitals(model):
    return {n: k.upper() for n, k in by_layer_name(model).items()}


@suite.wrong(r"'embeddings'.* are not kinds")
def plural_kinds(model):
    return {n: k + "s" for n, k in by_layer_name(model).items()}


@suite.wrong(r"return a dict")
def a_list(model):
    return list(by_layer_name(model))


@suite.wrong(r"\{kind: weights\}")
def inverted(model):
    out = {}
    for n, k in by_layer_name(model).items():
        out.setdefault(k, []).append(n)
    return out


@suite.wrong(r"not the layers")
def names_the_modules(model):
    return {name: LAYER_KINDS[name.split(".")[-1]] for name, m in model.named_modules() if isinstance(m, nn.Linear)}


@suite.wrong(r"fc1 and fc2 weights are pruned")
def starts_with_fc(model):
    kinds = {}
    for name, _ in model.named_parameters():
        if not name.endswith(".weight"):
            continue
        if name.startswith("embed"):
            kinds[name] = "embedding"
        elif name.startswith("head"):
            kinds[name] = "output"
        elif "qkv" in name or "proj" in name:
            kinds[name] = "attention"
        elif name.startswith("fc"):
            kinds[name] = "mlp"
    return kinds


@suite.wrong(r"returned None")
def prints_instead_of_returning(model):
    kinds = by_layer_name(model)  # noqa: F841


@suite.wrong(r"keys are the weights' names")
def parameters_as_keys(model):
    params = dict(model.named_parameters())
    return {params[n]: k for n, k in by_layer_name(model).items()}


# --- right -------------------------------------------------------------------------------------------


@suite.right
def by_module_type(model):
    kinds = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            kinds[name + ".weight"] = LAYER_KINDS[name.split(".")[-1]]
    return kinds


@suite.right
def over_the_blocks(model):
    kinds = {"embed.weight": "embedding"}
    for i, _ in enumerate(model.blocks):
        kinds[f"blocks.{i}.qkv.weight"] = "attention"
        kinds[f"blocks.{i}.proj.weight"] = "attention"
        kinds[f"blocks.{i}.fc1.weight"] = "mlp"
        kinds[f"blocks.{i}.fc2.weight"] = "mlp"
    kinds["head.weight"] = "output"
    return kinds


@suite.right
def with_regular_expressions(model):
    rules = [(r"^embed\.weight$", "embedding"), (r"\.(qkv|proj)\.weight$", "attention"),
             (r"\.fc[12]\.weight$", "mlp"), (r"^head\.weight$", "output")]
    kinds = OrderedDict()
    for name, _ in model.named_parameters():
        for pattern, kind in rules:
            if re.search(pattern, name):
                kinds[name] = kind
    return kinds


@suite.right
def matrices_but_the_tokens(model):
    kinds = {}
    for name, p in sorted(model.named_parameters()):
        if p.dim() == 2:
            kinds[name] = by_layer_name(model)[name]
    return kinds


@suite.right
def by_layer_names(model):
    return by_layer_name(model)

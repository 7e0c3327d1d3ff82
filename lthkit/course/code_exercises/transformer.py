"""Notebook 09's code exercises: which weights of a transformer IMP prunes.

The checker judges on lthkit's vit with its own answer taken away (``model.prunable_kinds()`` refuses), and
against kinds found here from the model's linear layers, so a function that hands back lthkit's answer is
told so instead of passing.
"""

from __future__ import annotations

from torch import nn

from lthkit.course.code_exercises.common import Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise
from lthkit.models import ViT

KIND_OF_LAYER = {"embed": "embedding", "qkv": "attention", "proj": "attention", "fc1": "mlp", "fc2": "mlp",
                 "head": "output"}
KINDS = ("embedding", "attention", "mlp", "output")
ASKED_LTHKIT = ("you returned lthkit's own answer (model.prunable_kinds(), which lthkit.models.prunable_layers "
                "calls too): find the kinds yourself, looping over model.named_parameters()")


def transformer_kinds_reference(model: nn.Module) -> dict[str, str]:
    """{weight name: kind} of the weights IMP prunes, from the model's linear layers and their names."""
    return {f"{name}.weight": KIND_OF_LAYER[name.rsplit(".", 1)[-1]]
            for name, module in model.named_modules() if isinstance(module, nn.Linear)}


class _ViTWithoutAnswer(ViT):
    """lthkit's vit, but asking it for its kinds is the learner's mistake, said by name."""

    def prunable_kinds(self) -> dict[str, str]:
        raise Mistake(ASKED_LTHKIT)


def _check_form(out, right: dict[str, str]) -> None:
    """A dict from weight names (str) to one kind each, lowercase, as the notebook asks."""
    if out is None:
        raise Mistake("your function returned None: return the dict {weight name: kind}")
    if not isinstance(out, dict):
        raise Mistake(f"return a dict {{weight name: kind}}, not {type(out).__name__}")
    if any(not isinstance(n, str) for n in out):
        odd = next(type(n).__name__ for n in out if not isinstance(n, str))
        raise Mistake(f"the keys are the weights' names, str such as 'blocks.0.qkv.weight' (from "
                      f"model.named_parameters()), not {odd}")
    if out and set(out) <= set(KINDS):
        raise Mistake("you made {kind: weights}: the keys are the weights' names and the values their kinds")
    if out and all(f"{n}.weight" in right for n in out):
        raise Mistake("name the weights, such as 'blocks.0.qkv.weight', not the layers ('blocks.0.qkv'): "
                      "model.named_parameters() gives those names")
    if any(not isinstance(k, str) for k in out.values()):
        odd = next(type(k).__name__ for k in out.values() if not isinstance(k, str))
        raise Mistake(f"each weight's kind is one str, such as 'attention', not {odd}")


def _check_names(out: dict, right: dict[str, str], depth: int) -> None:
    extra, missing = set(out) - set(right), set(right) - set(out)
    if any(n.endswith("bias") for n in extra):
        raise Mistake("you included biases: as in the paper, only weights between units are pruned")
    if any("norm" in n for n in extra):
        raise Mistake("you included layer norms' scales: one per feature, each scales a whole feature of "
                      "every token; they are not connections and are not pruned")
    if {"cls", "pos"} & extra:
        raise Mistake("you included the class token or the positions: they are added to the tokens, not "
                      "connections between units; not pruned")
    if extra:
        raise Mistake(f"{sorted(extra)} are not weights of this network (it has {depth} blocks): loop over "
                      "model.named_parameters() instead of naming them")
    if missing and depth == 3 and missing == {n for n in right if n.startswith("blocks.2.")}:
        raise Mistake("right for two blocks only: with three blocks you missed "
                      f"{sorted(missing)}; loop over the model's parameters instead of naming them")
    blocks = sorted({int(n.split(".")[1]) for n in missing if n.startswith("blocks.")})
    if blocks and missing == {n for n in right if n.startswith(tuple(f"blocks.{i}." for i in blocks))}:
        raise Mistake(f"you left out every weight of block{'s' * (len(blocks) > 1)} {', '.join(map(str, blocks))} "
                      f"(of {depth}): loop over "
                      "all of model.blocks, or over model.named_parameters()")
    if "embed.weight" in missing:
        raise Mistake("the patch embedding (embed.weight) is a weight matrix like any other: kind embedding")
    if "head.weight" in missing:
        raise Mistake("the head (head.weight) is pruned too: kind output, at its own, lower rate")
    for kind, layers in (("attention", "qkv and proj"), ("mlp", "fc1 and fc2")):
        if any(right[n] == kind for n in missing):
            raise Mistake(f"you left out {sorted(n for n in missing if right[n] == kind)}: each block's {layers} "
                          f"weights are pruned, kind {kind}")
    if missing:
        raise Mistake(f"you left out {sorted(missing)}")


def _check_kinds(out: dict, right: dict[str, str]) -> None:
    unknown = sorted({k for k in out.values() if k not in KINDS})
    if unknown and all(k.strip().lower() in KINDS for k in unknown):
        raise Mistake(f"the kinds are lowercase words, {', '.join(map(repr, KINDS))}; "
                      f"not {', '.join(map(repr, unknown))}")
    if unknown:
        verb = "is not a kind" if len(unknown) == 1 else "are not kinds"
        raise Mistake(f"{', '.join(map(repr, unknown))} {verb}: the kinds are {', '.join(map(repr, KINDS))}")
    wrong = {n: (out[n], k) for n, k in right.items() if out[n] != k}
    if "head.weight" in wrong:
        raise Mistake(f"the head is the output layer: kind output, not {wrong['head.weight'][0]!r}; it is "
                      "pruned at its own, lower rate, as the paper's output layer is")
    if "embed.weight" in wrong:
        raise Mistake(f"the patch embedding (embed.weight) is kind embedding, not {wrong['embed.weight'][0]!r}")
    if any(k == "attention" for _, k in wrong.values()):
        raise Mistake("the query-key-value projection (qkv) and the output projection (proj) are attention")
    if any(k == "mlp" for _, k in wrong.values()):
        raise Mistake("fc1 and fc2 inside a block are the block's mlp")
    if wrong:
        raise Mistake(f"wrong kinds: {wrong} (yours, the right one)")


@exercise("09.prunable-kinds", reference=transformer_kinds_reference)
def _prunable_kinds_exercise(fn) -> Verdict:
    def cases() -> str:
        for depth in (2, 3):
            model = _ViTWithoutAnswer((1, 28, 28), depth=depth)
            right = transformer_kinds_reference(model)
            out = _run(fn, model)
            _check_form(out, right)
            _check_names(out, right, depth)
            _check_kinds(out, right)
        return "names exactly the weights IMP prunes, with their kinds, for any number of blocks."
    return _judge("transformer_kinds", cases)

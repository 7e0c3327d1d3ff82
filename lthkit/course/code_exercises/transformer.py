"""Notebook 09's code exercises: which weights of a transformer IMP prunes."""

from __future__ import annotations

from lthkit.course.code_exercises.common import Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise


@exercise("09.prunable-kinds")
def _prunable_kinds_exercise(fn) -> Verdict:
    from lthkit.models import ViT

    def cases() -> str:
        for depth in (2, 3):
            model = ViT((1, 28, 28), depth=depth)
            out = _run(fn, model)
            if not isinstance(out, dict):
                raise Mistake(f"return a dict {{weight name: kind}}, not {type(out).__name__}")
            right = model.prunable_kinds()
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
                raise Mistake(f"{sorted(extra)} are not weights of the network")
            if missing and depth == 3 and not set(ViT((1, 28, 28)).prunable_kinds()) - set(out):
                raise Mistake("right for two blocks only: with three blocks you missed "
                              f"{sorted(missing)}; loop over the model's parameters instead of naming them")
            if "embed.weight" in missing:
                raise Mistake("the patch embedding (embed.weight) is a weight matrix like any other: kind embedding")
            if missing:
                raise Mistake(f"you left out {sorted(missing)}")
            wrong = {n: (out[n], k) for n, k in right.items() if out[n] != k}
            if "head.weight" in wrong:
                raise Mistake(f"the head is the output layer: kind output, not {wrong['head.weight'][0]!r}; it is "
                              "pruned at its own, lower rate, as the paper's output layer is")
            if any(k == "attention" for _, k in wrong.values()):
                raise Mistake("the query-key-value projection (qkv) and the output projection (proj) are attention")
            if any(k == "mlp" for _, k in wrong.values()):
                raise Mistake("fc1 and fc2 inside a block are the block's mlp")
            if wrong:
                raise Mistake(f"wrong kinds: {wrong} (yours, the right one)")
        return "names exactly the weights IMP prunes, with their kinds, for any number of blocks."
    return _judge("transformer_kinds", cases)

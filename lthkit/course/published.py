"""The numbers the notebooks' markdown may state although a run prints them too.

A learner's copy has no outputs, so markdown never quotes a run (``lthkit.course.readouts`` prints what
a run shows). A few numbers are the same in every run because the design fixes them (a pruning rate, the
fraction of weights a schedule leaves), or are a paper's published numbers that a run happens to print
as well; each is listed here with why, so that ``tests/test_notebooks.py`` can tell them from a run's.
"""

DESIGN: dict[str, dict[str, str]] = {
    "02": {"20": "the paper's pruning rate of LeNet-300-100's hidden layers",
           "80": "the share of the surviving weights a round at 20% keeps",
           "90": "the sparsity exercise 3 and section 6 prune to"},
    "03": {"3.6": "what 15 rounds at 20% (10% for the output layer) leave, the fraction at which Frankle & "
                  "Carbin's LeNet-300-100 ticket is back to the dense network's accuracy"},
    "05": {"80.1": "what one round at Conv-2's per-layer rates leaves of its weights"},
    "07": {"1.7": "what 8 rounds at 40% (20% for the output layer) leave of LeNet-300-100's weights"},
}

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
    "05": {"80.1": "what one round at Conv-2's per-layer rates leaves of its weights",
           "95": "the confidence level of the intervals the text and the readouts give"},
    "06": {"10.8": "what 10 rounds at 20% (10% for the output layer) leave of LeNet-300-100's weights",
           "95": "the confidence level of the intervals the text and the readouts give"},
    "07": {"1.7": "what 8 rounds at 40% (20% for the output layer) leave of LeNet-300-100's weights"},
    "08": {"10": "chance on ten classes",
           "50": "the density at which the notebook trains edge-popup over the Glorot weights"},
    "10": {"3.5": "the sparsity of LeNet-300-100's ticket in Frankle et al. 2020's Table 1 (15 rounds at 20%)",
           "16.8": "the sparsity of ResNet-20's ticket in Frankle et al. 2020's Table 1 (8 rounds at 20%)",
           "20": "the papers' pruning rate a round",
           "50": "the larger share of channels the channel-pruned networks keep, and 2:4 sparsity's share",
           "25": "the smaller share of channels the channel-pruned networks keep",
           "5": "the density of the CSR example in the text (a tenth of the bytes of a dense matrix)"},
}

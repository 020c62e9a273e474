"""tfopt's int8 engine: statistics, ranges, range placement, fake quants, the weight transforms
(equalize, AdaRound, bias correction) and the plan of which int8 artifacts it builds: int8 decided once,
in the TF graph, for every target."""

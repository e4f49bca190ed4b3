"""The concurrency controller of enrichment: how many Bedrock requests a worker has in flight, and how fast
they start.

In: one `Sample` per request outcome (success with its latency, throttle, timeout), from enrich/outcomes.py;
whether the flow waits on this worker (`Window.hurry`, from the step's wait at its queue cap, via the engine).
Out: the window's current size and the delay before the next start, read by the engine's dispatch loop.

- limit.py    the interface every limit speaks (`Outcome`, `Sample`, `Limit`)
- aimd.py     `AimdLimit`: throttling halves the window, successes grow it by one per window
- gradient.py `GradientLimit`: latency rising under our load shrinks it, flat latency grows it
- pacer.py    `RatePacer`: under a per-minute quota, request starts spaced at the admitted rate
- window.py   `Window`: composes the three, handles throttles, built from the settings
"""

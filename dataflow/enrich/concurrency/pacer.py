"""Rate pacing: under a per-minute quota, space request starts at the rate the quota admits.

A concurrency window alone cannot hold a per-minute quota: with fast answers even a window of one sends more
than the quota admits, and each throttle costs a round trip. The pacer learns the admitted rate from the
successes of the last minute and spaces request starts (`delay`, `on_send`); `on_sample` takes the same
outcomes as the concurrency limits (limit.py), and its current value is `rate` (None while unpaced).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dataflow.enrich.concurrency.limit import Outcome, Sample


@dataclass
class RatePacer:
    """Paces request starts under a per-minute quota, so a backlog runs at the quota instead of into it.

    A quota shows itself as throttling that persists: in a run younger than the 60 s window, `young_events`
    throttle events in a row with no success (six: across the doubling pauses, ~3 s with nothing admitted);
    later, throttle events less than `recent_s` apart (scattered throttles, which pacing cannot cure, rarely do
    either). Then the pacer sends at `backoff` x the rate admitted over the last 60 s (Bedrock quotas are per
    minute, so that is what the quota lets through), never faster than it already does and never below `floor`
    x the best such rate seen; every success of a send the pace held back then probes upward by `growth` (a
    pace that does not bind, because slow answers fill the window, does not grow past what it has shown: with
    a noisy model it crept to 1.1x the quota and every edge cost several throttles). A probe cycle is about
    ln(1/backoff)/growth successes (~150) for two throttles, about 1.3%. Every throttle also pauses all sends,
    doubling while throttles continue (as they do until a burst leaves the 60 s window) and reset by a success.
    Before the quota shows, nothing is paced.

    A young run's pace is a partial minute's rate, and a storm of random throttles also throttles a few times
    in a row by chance (four in a row did in most simulated storms of 25%, and paced them at 0.2-1.5 rps for
    a minute or more). A sliding quota filled in its first minute admits nothing new until that minute
    slides, so when `young_release` paced requests succeed before then, at least as many as are throttled,
    the pace is released at once.

    A cut is judged one window later (throttles within the window after a cut still come from before it, so
    they only pause), counting every throttle since, quota-looking or not: if three or more of the requests
    since then, and at least `scatter_share` of them, were still throttled while others succeeded, pacing did
    not cure it, so it was not the rate (a busy service throttling at random): the pace is released and, for
    `scatter_hold_s`, throttles only pause. A quota-looking throttle after `scatter_sample` successes is the
    upward probe reaching the quota again: that cuts. Without this,
    each scattered throttle cut the pace to 0.9 x an admitted rate that the throttles themselves had lowered,
    down to the floor.

    While the whole flow waits on this worker (`hurry`, set by the window: its step holds up Bytewax's epoch,
    so no source of the cluster reads and the other workers run dry), the others' share of the quota is idle:
    with no throttle for `hurry_clean_s`, a paced send that binds grows the pace by `hurry_per_s` per second
    instead of ~0.1%/s, but never past `lead` x the rate the sliding window admitted (a burst into the room a
    slow minute left overshot to 3.5 rps of 2 in the model, and cost ten throttles while it slid out); bound
    by it, the pace can double in about 80 s. The first throttle is the quota's edge: the ordinary cut paces at
    0.9 x what the window admitted, which by then includes what the idle workers left. Per success the ordinary
    probe was hopeless here: a worker at 0.5 rps gains 11% in 300 s.

    But a step also waits at its cap while every other worker is busy (4 shards keyed by shard id under a
    backlog: waits of about one answer, again and again), and there is no idle share to take: hurried pacers of
    four busy workers overshot the quota together, every 60 s (12-57% of requests throttled in the model,
    shared_quota.py). Others run dry only when a wait outlasts their queues, so a wait hurries once it has
    lasted `hurry_after_s` (the waits that starved a worker lasted a minute). The throttle that ends a hurry is
    the quota's edge: it cuts at once, never judged as scattered, and doubles the clean time the next hurry
    needs, up to `hurry_backoff_max_s` (an idle share that appears later waits at most that long for a hurry).
    """

    window_s: float = 60.0
    backoff: float = 0.9
    growth: float = 0.0007
    probe_cycle: int = 150  # successes of a probe at `growth` (0.9 -> 1.0); each cycle with no throttle doubles it
    max_growth_factor: float = 8.0
    hurry_per_s: float = 0.05
    hurry_clean_s: float = 60.0
    hurry_backoff_max_s: float = 960.0
    hurry_after_s: float = 10.0
    lead: float = 1.3
    floor: float = 0.25
    pause_base_s: float = 0.1
    pause_max_s: float = 8.0
    recent_s: float = 5.0
    young_events: int = 6
    young_release: int = 8
    scatter_share: float = 0.1
    episode_sends: float = 3.0
    scatter_sample: int = 20
    scatter_hold_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    rate: float | None = field(init=False, default=None)
    hurry: bool = field(init=False, default=False)  # the flow waits on this worker (Window.hurry), since:
    _hurry_since: float = field(init=False, default=float("inf"))
    _throttled_at: float = field(init=False, default=float("-inf"))
    _next_at: float = field(init=False, default=0.0)
    _admitted: deque[float] = field(init=False, default_factory=deque)
    _last_cut: float = field(init=False, default=float("-inf"))
    _consecutive: int = field(init=False, default=0)
    _peak: float = field(init=False, default=0.0)
    _first_send: float | None = field(init=False, default=None)
    _paced_at: float = field(init=False, default=float("-inf"))  # when the rate was last cut
    _judged: list[int] = field(init=False, default_factory=lambda: [0, 0, 0])  # successes, throttles, episodes
    _scattered_until: float = field(init=False, default=float("-inf"))
    _young: list[int] | None = field(init=False, default=None)  # successes, throttles since a young run's cut
    _binding: bool = field(init=False, default=False)  # the last send went as soon as the pace allowed
    _clean: int = field(init=False, default=0)  # paced successes since the last throttle
    _released_share: float = field(init=False, default=0.0)  # throttled share that released the pace
    _hold: list[int] = field(init=False, default_factory=lambda: [0, 0])  # successes, throttles since then
    _hurry_wait: float | None = field(init=False, default=None)  # clean seconds the next hurry needs; None: base
    _hurried: bool = field(init=False, default=False)  # the hurry grew the pace since the last throttle

    @property
    def current(self) -> float | None:
        """Requests per second the pacer allows; None while it does not pace."""
        return self.rate

    def on_sample(self, sample: Sample) -> bool:
        """A success raises the pace; a throttle pauses and may pace (True when it reacted); a timeout: nothing."""
        if sample.outcome is Outcome.SUCCESS:
            self.on_success(sample.started)
            return False
        if sample.outcome is Outcome.THROTTLE:
            return self.on_throttle(sample.started)
        return False

    def set_hurry(self, on: bool) -> None:
        """The flow waits on this worker from now (or no longer does)."""
        if on and not self.hurry:
            self._hurry_since = self.clock()
        self.hurry = on

    def delay(self) -> float:
        """Seconds until the next request may start (0 when unpaced and not paused)."""
        return max(0.0, self._next_at - self.clock())

    def on_send(self) -> None:
        now = self.clock()
        if self._first_send is None:
            self._first_send = now
        if self.rate is not None:
            interval = 1.0 / self.rate
            # A send later than an interval after the pace allowed it was held by something else (the window
            # full of slow answers, no reviews to send): the pace did not bind, so its success proves nothing.
            self._binding = now - self._next_at <= interval
            self._next_at = max(now, self._next_at) + interval

    def on_success(self, request_started: float) -> None:
        self._admitted.append(request_started)
        self._forget_before(self.clock() - self.window_s)  # bounded by the window, however long the run
        self._consecutive = 0
        if self.clock() < self._scattered_until:
            self._hold[0] += 1
        if self.rate is not None:
            if self._binding:
                self._clean += 1
                factor = min(self.max_growth_factor, 2.0 ** min(64, self._clean // self.probe_cycle))
                step = self.growth * factor
                grown = self.rate * (1.0 + step)
                wait = self.hurry_clean_s if self._hurry_wait is None else self._hurry_wait
                now = self.clock()
                if self.hurry and now - self._hurry_since >= self.hurry_after_s and now - self._throttled_at >= wait:
                    # ~one success per 1/rate s: hurry_per_s per second, up to `lead` x what the window admitted
                    ceiling = self.lead * len(self._admitted) / self.window_s
                    hurried = min(self.rate + self.hurry_per_s, ceiling)
                    if hurried > grown:
                        grown, self._hurried = hurried, True
                self.rate = grown
            if self.clock() - self._paced_at >= self.window_s:
                self._judged[0] += 1
            self._judge_young(request_started, throttled=False)

    def on_throttle(self, request_started: float) -> bool:
        """React once per congestion event: pause, and pace when throttling persists; True when it reacted."""
        self._clean = 0
        self._throttled_at = self.clock()
        hurried = self._back_off_hurry()
        if request_started < self._last_cut:
            return False
        self._judge_young(request_started, throttled=True)
        now = self.clock()
        self._forget_before(now - self.window_s)
        age = now - (self._first_send if self._first_send is not None else now)
        recent = now - self._last_cut < self.recent_s
        # A run younger than the window paces only when throttling has persisted (`young_events`, no success):
        # then the window is plainly full. An older run paces on any repeated throttling, successes in between or not.
        if now < self._scattered_until and self._rate_after_all():
            self._scattered_until = now  # unpaced, throttling got much worse: it was the rate after all
        if now < self._scattered_until:
            quota = False  # throttling that pacing did not cure: the pauses and the AIMD window answer it
        elif age < self.window_s:
            quota = self._consecutive >= self.young_events - 1
        else:
            quota = self._consecutive >= 1 or recent
        if hurried:
            quota = True  # the hurry's edge is the quota's: cut now, never judged as scattered
        elif self.rate is not None:
            # Every throttle of a paced run is evidence, not only those that look like a quota: at a low pace
            # scattered throttles come seconds apart with successes between, and counting only the
            # quota-looking ones let the probe rule cut a pace that should have been released.
            cut = self._judge_cut(now, episode=now - self._last_cut > self.episode_sends / self.rate)
            quota = quota and cut
        if quota and self._admitted:  # with nothing admitted there is no rate to learn: the pause does
            admitted = len(self._admitted) / self.window_s
            self._peak = max(self._peak, admitted)
            target = max(admitted * self.backoff, self._peak * self.floor, 1.0 / self.window_s)
            if self.rate is None or self.rate > target:
                self.rate = target
                self._paced_at = now
                self._judged = [0, 0, 0]
                self._young = [0, 0] if age < self.window_s else None
        pause = min(self.pause_max_s, self.pause_base_s * 2**self._consecutive)
        self._consecutive += 1
        self._next_at = max(self._next_at, now + pause)
        self._last_cut = now
        return True

    def _back_off_hurry(self) -> bool:
        """A throttle ends a hurry (True when one was on): the next one waits twice as long."""
        if not self._hurried:
            return False
        wait = self.hurry_clean_s if self._hurry_wait is None else self._hurry_wait
        self._hurry_wait = min(self.hurry_backoff_max_s, 2 * wait)
        self._hurried = False
        return True

    def _judge_cut(self, now: float, episode: bool) -> bool:
        """Whether a throttle while paced may cut again (see the class docstring); may release the pace.

        `episode`: this throttle comes more than `episode_sends` paced sends after the last one reacted to."""
        if now - self._paced_at < self.window_s:
            return False  # the last cut has not had a window to show its effect yet
        self._judged[1] += 1
        self._judged[2] += episode
        ok, throttled, episodes = self._judged
        # Successes and throttles mixed at the paced rate, again and again: random, not a quota (a quota that
        # admits nothing at all is still a quota: the pace and the doubling pauses stay). Throttles within a few
        # sends of each other are one episode: the shared quota's edge, reached when another worker's probe
        # filled it, throttles each worker a few sends in a row. Counted one by one, an edge less than ~20
        # successes after the judgement began released the pace, and four unpaced workers were throttled 10-15
        # times each. Random throttling of 25% leaves more than 3 sends between throttles 42% of the time.
        if ok and throttled >= 3 and episodes >= 3 and throttled / (ok + throttled) >= self.scatter_share:
            self.rate = None  # pacing did not stop it: not the rate's doing
            self._scattered_until = now + self.scatter_hold_s
            self._released_share = throttled / (ok + throttled)
            self._hold = [0, 0]
            self._judged = [0, 0, 0]
            return False
        # Many successes since the cut settled, then a throttle: the upward probe found the quota's edge again.
        return ok >= self.scatter_sample

    def _rate_after_all(self) -> bool:
        """Whether sending unpaced throttles far more than the paced run did (counts this throttle).

        Workers sharing one quota see it as scattered throttling: each one's throttles depend on the others'
        sends, so a pace can look as if it did not cure them. Released, they all send as fast as their windows
        allow and the shared quota throttles most requests (a simulated 4-worker cluster: 39% for minutes). A
        busy service throttling at random throttles about as often paced or not; a quota, twice as often, or
        half of all requests (a pace released at 25-33% by the edges of other workers' probes stayed released
        at 40% in the model, with a bar of 2x at up to 90%)."""
        self._hold[1] += 1
        ok, throttled = self._hold
        return throttled >= 10 and throttled / (ok + throttled) >= min(0.5, 2 * self._released_share)

    def _judge_young(self, request_started: float, throttled: bool) -> None:
        """Release a young run's pace that paced requests disprove (see the class docstring)."""
        if self._young is None or self.rate is None or request_started < self._paced_at:
            return
        # A few seconds' margin: other clients of the quota may have started a little earlier.
        if self._first_send is None or self.clock() >= self._first_send + self.window_s - self.recent_s:
            self._young = None  # the first minute slides now: the ordinary judgement takes over
            return
        self._young[1 if throttled else 0] += 1
        ok, throttles = self._young
        if ok >= self.young_release and ok >= throttles:
            self.rate = None
            self._young = None

    def _forget_before(self, cutoff: float) -> None:
        while self._admitted and self._admitted[0] < cutoff:
            self._admitted.popleft()

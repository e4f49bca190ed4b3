"""Seeded synthetic reviews with known labels: a dataset-free way to drive the pipeline and check accuracy.

Review `index` under `seed` depends only on (seed, index), never on how many reviews are asked for, so
`--synthetic 100` is a prefix of `--synthetic 1000` and the ids `synthetic-<seed>-<index>` are stable.
The text is assembled from templates and vocabulary (movies and products, openers, aspects, a contrast
clause of the other polarity now and then, a verdict) so the sentiment is clear to a reader but not a
single keyword; labels are drawn 50/50.

Two length profiles. `short` (the default): 15-60 words, for fast tests and benchmarks. `realistic`: word counts
drawn from a lognormal fitted to IMDB movie reviews (median ~170 words, mean ~225, about 1% above 900 words),
clipped to [10, 2500]; the text grows with more aspect sentences, neutral context and the occasional
contrast, in paragraphs, so long reviews stay readable and their sentiment stays clear. No third-party
review text is used.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from producer.records import Label, Review, make_review

SOURCE = "synthetic"
LENGTHS = ("short", "realistic")

# IMDB-like review lengths in words: lognormal(ln 170, 0.74), clipped. Fitted to the median (~170), the mean
# (~230 before clipping and sentence rounding) and the tail (~1% above 900 words) of the Large Movie Review Dataset.
LENGTH_MEDIAN_WORDS = 170.0
LENGTH_SIGMA = 0.74
MIN_WORDS = 10
MAX_WORDS = 2500


@dataclass(frozen=True)
class Subject:
    """Something to review: how to name it and which aspects a reviewer talks about."""

    kind: str
    names: tuple[str, ...]
    aspects: tuple[str, ...]


SUBJECTS: tuple[Subject, ...] = (
    Subject(
        "movie",
        ("this film", "the movie", "this thriller", "this comedy", "the sequel", "this drama", "this documentary"),
        (
            "the acting",
            "the script",
            "the pacing",
            "the soundtrack",
            "the cinematography",
            "the ending",
            "the dialogue",
            "the lead performance",
            "the special effects",
            "the plot",
        ),
    ),
    Subject(
        "headphones",
        ("these headphones", "the earbuds", "this headset"),
        (
            "the sound quality",
            "the battery life",
            "the noise cancelling",
            "the fit",
            "the microphone",
            "the Bluetooth connection",
            "the carrying case",
        ),
    ),
    Subject(
        "kitchen",
        ("this blender", "the coffee maker", "this air fryer", "the kettle", "this toaster"),
        (
            "the build quality",
            "the noise level",
            "the cleanup",
            "the heating time",
            "the controls",
            "the capacity",
            "the instructions",
        ),
    ),
    Subject(
        "shoes",
        ("these running shoes", "the hiking boots", "these sneakers"),
        ("the cushioning", "the sizing", "the grip", "the stitching", "the arch support", "the weight"),
    ),
    Subject(
        "book",
        ("this novel", "the book", "this cookbook", "the biography"),
        ("the writing", "the characters", "the recipes", "the research", "the print quality", "the ending"),
    ),
    Subject(
        "gadget",
        ("this phone case", "the smartwatch", "this charger", "the robot vacuum", "this tablet"),
        ("the screen", "the setup", "the app", "the charging speed", "the design", "the customer support"),
    ),
)

GOOD = (
    "excellent",
    "superb",
    "wonderful",
    "fantastic",
    "impressive",
    "outstanding",
    "great",
    "delightful",
    "solid",
    "brilliant",
    "top-notch",
    "remarkable",
)
BAD = (
    "terrible",
    "awful",
    "disappointing",
    "poor",
    "mediocre",
    "dreadful",
    "flimsy",
    "painful",
    "useless",
    "frustrating",
    "sloppy",
    "underwhelming",
)
GOOD_ADV = ("really", "genuinely", "surprisingly", "consistently", "absolutely", "truly")
BAD_ADV = ("really", "utterly", "painfully", "consistently", "downright", "frankly")

OPENERS: dict[Label, tuple[str, ...]] = {
    "positive": (
        "I loved {name}.",
        "What a pleasant surprise {name} turned out to be.",
        "I was skeptical at first, but {name} won me over.",
        "Honestly one of the best purchases I've made this year: {name}.",
        "{Name} exceeded my expectations.",
        "I've recommended {name} to all my friends.",
        "Five stars for {name}.",
    ),
    "negative": (
        "I regret buying {name}.",
        "What a letdown {name} was.",
        "I really wanted to like {name}, but I couldn't.",
        "Save your money and skip {name}.",
        "{Name} did not live up to the hype.",
        "I returned {name} after a week.",
        "One star for {name}, and that is generous.",
    ),
}
ASPECT_LINES: dict[Label, tuple[str, ...]] = {
    "positive": (
        "{Aspect} is {adv} {adj}.",
        "{Aspect} was {adj} from start to finish.",
        "I was especially impressed by {aspect}, which is {adj}.",
        "{Aspect} works exactly as advertised and feels {adj}.",
        "Even {aspect} is {adv} {adj}.",
    ),
    "negative": (
        "{Aspect} is {adv} {adj}.",
        "{Aspect} was {adj} from start to finish.",
        "I was especially annoyed by {aspect}, which is {adj}.",
        "{Aspect} never worked as advertised and feels {adj}.",
        "Even {aspect} is {adv} {adj}.",
    ),
}
# A clause of the other polarity, softened, so a review is not all one tone.
CONTRASTS: dict[Label, tuple[str, ...]] = {
    "positive": (
        "{Aspect} could be a little better, but that is a minor complaint.",
        "Sure, {aspect} is not perfect, yet it hardly matters.",
        "The price is a bit high, although it is worth every penny.",
    ),
    "negative": (
        "{Aspect} is decent, but that does not make up for the rest.",
        "The packaging was nice, which is about the only good thing I can say.",
        "I suppose {aspect} is fine, yet everything else falls apart.",
    ),
}
VERDICTS: dict[Label, tuple[str, ...]] = {
    "positive": (
        "Highly recommended.",
        "I would buy it again without hesitation.",
        "Definitely worth it.",
        "Can't wait to see what they do next.",
        "A clear 9 out of 10 for me.",
    ),
    "negative": (
        "Not recommended.",
        "I would not buy it again.",
        "Definitely not worth it.",
        "A waste of time and money.",
        "A generous 3 out of 10 for me.",
    ),
}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def synthetic_text(rng: random.Random, label: Label) -> str:
    """One review of `label`'s polarity: opener, 1-4 aspect sentences, maybe a contrast, maybe a verdict."""
    subject = rng.choice(SUBJECTS)
    name = rng.choice(subject.names)
    adjs, advs = (GOOD, GOOD_ADV) if label == "positive" else (BAD, BAD_ADV)
    aspects = rng.sample(subject.aspects, k=min(len(subject.aspects), rng.randint(1, 4)))
    sentences = [rng.choice(OPENERS[label]).format(name=name, Name=_cap(name))]
    for aspect, adj in zip(aspects, rng.sample(adjs, k=len(aspects)), strict=True):
        line = rng.choice(ASPECT_LINES[label])
        sentences.append(line.format(aspect=aspect, Aspect=_cap(aspect), adj=adj, adv=rng.choice(advs)))
    if rng.random() < 0.35:
        other = rng.choice([a for a in subject.aspects if a not in aspects] or list(subject.aspects))
        sentences.insert(
            rng.randint(2, len(sentences)), rng.choice(CONTRASTS[label]).format(aspect=other, Aspect=_cap(other))
        )
    if rng.random() < 0.8:
        sentences.append(rng.choice(VERDICTS[label]))
    return " ".join(sentences)


# Neutral context for longer reviews: circumstances, comparisons, asides; no polarity words.
CONTEXT_LINES: tuple[str, ...] = (
    "I {did} {name} {when}.",
    "{When}, I finally {did} {name} {how}.",
    "For some context, I {did} {name} {when}, {how}.",
    "Let me say a few words about {aspect}.",
    "Some people online have written a lot about {aspect}.",
    "My {person} and I talked about {aspect} for quite a while afterwards.",
    "It took me a while to make up my mind about {aspect}.",
    "Compared with the last one I tried, {aspect} is quite different.",
    "I kept thinking about {aspect} over the following days.",
    "Before that I had read a couple of reviews, so I knew roughly what to expect.",
    "I went in knowing very little about it.",
    "My {person} picked it, which is how I came to it in the first place.",
    "I have {did} a lot of these over the years, so I have something to compare it with.",
    "Now, about {aspect}.",
    "There is also {aspect} to consider.",
    "To put it in perspective, I {did} it {how}.",
    "Then there is the question of {aspect}, which deserves its own paragraph.",
)
WHEN = (
    "last weekend",
    "a few months ago",
    "over the holidays",
    "on a rainy Sunday",
    "after a long week at work",
    "on a friend's recommendation",
    "during a trip to see my parents",
    "last night",
)
HOW = ("with my family", "on my own", "twice in a row", "in one go", "over several evenings", "with two friends")
PEOPLE = ("partner", "brother", "sister", "roommate", "neighbour", "colleague", "best friend", "dad")
VERBS = {"movie": "watched", "book": "read"}  # others: "used"
MORE_ASPECT_LINES: dict[Label, tuple[str, ...]] = {
    "positive": (
        "Every time I came back to it, {aspect} felt {adj}.",
        "The more I think about {aspect}, the more {adj} it seems.",
        "{Aspect} is where it really shines; it is {adv} {adj}.",
        "Special mention goes to {aspect}, which is simply {adj}.",
    ),
    "negative": (
        "Every time I came back to it, {aspect} felt {adj}.",
        "The more I think about {aspect}, the more {adj} it seems.",
        "{Aspect} is where it really falls down; it is {adv} {adj}.",
        "Special mention goes to {aspect}, which is simply {adj}.",
    ),
}


def realistic_length(rng: random.Random) -> int:
    """A review length in words, from the IMDB-like distribution above."""
    words = round(rng.lognormvariate(math.log(LENGTH_MEDIAN_WORDS), LENGTH_SIGMA))
    return min(MAX_WORDS, max(MIN_WORDS, words))


def long_text(rng: random.Random, label: Label, target_words: int) -> str:
    """A review of `label`'s polarity of about `target_words` words (never more than MAX_WORDS)."""
    subject = rng.choice(SUBJECTS)
    name = rng.choice(subject.names)
    adjs, advs = (GOOD, GOOD_ADV) if label == "positive" else (BAD, BAD_ADV)
    did = VERBS.get(subject.kind, "used")
    verdict = rng.choice(VERDICTS[label])
    budget = min(target_words, MAX_WORDS - 30) - len(verdict.split())  # the last sentence may overshoot a little
    paragraphs: list[list[str]] = [[rng.choice(OPENERS[label]).format(name=name, Name=_cap(name))]]
    words = len(paragraphs[0][0].split())
    contrasts = 0
    while words < budget:
        aspect = rng.choice(subject.aspects)
        fields = {
            "aspect": aspect,
            "Aspect": _cap(aspect),
            "adj": rng.choice(adjs),
            "adv": rng.choice(advs),
            "name": name,
            "did": did,
            "when": rng.choice(WHEN),
            "When": _cap(rng.choice(WHEN)),
            "how": rng.choice(HOW),
            "person": rng.choice(PEOPLE),
        }
        draw = rng.random()
        if draw < 0.5:
            template = rng.choice(ASPECT_LINES[label] + MORE_ASPECT_LINES[label])
        elif draw < 0.9 or contrasts * 8 > len(paragraphs):  # a contrast now and then, never dominant
            template = rng.choice(CONTEXT_LINES)
        else:
            template, contrasts = rng.choice(CONTRASTS[label]), contrasts + 1
        sentence = template.format(**fields)
        if len(paragraphs[-1]) >= rng.randint(4, 7):
            paragraphs.append([])
        paragraphs[-1].append(sentence)
        words += len(sentence.split())
    paragraphs[-1].append(verdict)
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def synthetic_review(seed: int, index: int, lengths: str = "short") -> Review:
    """Review number `index` for `seed`; independent of every other index."""
    rng = random.Random(f"reviewstream-synthetic:{seed}:{index}")
    label: Label = "positive" if rng.random() < 0.5 else "negative"
    if lengths == "realistic":
        text = long_text(rng, label, realistic_length(rng))
    elif lengths == "short":
        text = synthetic_text(rng, label)
    else:
        raise ValueError(f"unknown lengths {lengths!r}; choose one of: {', '.join(LENGTHS)}")
    return make_review(f"synthetic-{seed}-{index}", text, label, SOURCE)


def synthetic_reviews(count: int, seed: int, lengths: str = "short") -> Iterator[Review]:
    for index in range(count):
        yield synthetic_review(seed, index, lengths)

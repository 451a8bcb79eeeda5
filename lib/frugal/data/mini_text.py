"""Sentences for the synthetic mini corpus: a small probabilistic grammar over word classes.

The grammar has selectional preferences (animate subjects for verbs of perception and
motion, edible objects for EAT, places after prepositions of place, ...) so that a word
n-gram LM lowers perplexity well below a unigram one, as on real text. Sentence lengths
are drawn first (1 to 20 words, short ones frequent enough) and a sentence of exactly
that length is found by sampling the grammar, so the length distribution is under
control. Words are uppercase, as in Kaldi transcripts; the vocabulary has about 440 words.
"""
from __future__ import annotations

import random
from typing import Callable, Dict, List, Sequence

MAX_WORDS = 20

WORDS: Dict[str, List[str]] = {
    "det": ["THE", "A", "THIS", "THAT", "EVERY", "ONE", "MY", "YOUR", "HIS", "HER", "OUR",
            "THEIR", "SOME", "NO"],
    "det_plural": ["THE", "SOME", "MANY", "FEW", "TWO", "THREE", "FOUR", "FIVE", "SIX",
                   "SEVEN", "EIGHT", "TEN", "THESE", "THOSE", "ALL", "OUR", "THEIR"],
    "animal": ["CAT", "DOG", "HORSE", "BIRD", "FISH", "MOUSE", "RABBIT", "COW", "SHEEP",
               "GOAT", "DUCK", "FOX", "WOLF", "BEAR", "LION", "TIGER", "MONKEY", "FROG",
               "SNAKE", "OWL"],
    "person": ["MAN", "WOMAN", "CHILD", "BOY", "GIRL", "FARMER", "TEACHER", "DOCTOR",
               "DRIVER", "SINGER", "BAKER", "SAILOR", "KING", "QUEEN", "FRIEND",
               "NEIGHBOUR", "STUDENT", "PILOT", "NURSE", "GUARD"],
    "name": ["JOHN", "MARY", "PETER", "ANNA", "DAVID", "SARAH", "PAUL", "LUCY", "TOM",
             "EMMA", "JAMES", "KATE", "ROBERT", "ALICE", "MICHAEL", "HELEN"],
    "thing": ["BOOK", "BOX", "CHAIR", "TABLE", "DOOR", "WINDOW", "CUP", "BOTTLE", "KEY",
              "LETTER", "PHONE", "CLOCK", "LAMP", "BAG", "HAT", "COAT", "SHOE", "BALL",
              "PEN", "PICTURE", "RADIO", "BICYCLE", "BOAT", "CAR", "TRAIN", "TICKET",
              "MAP", "RING", "BASKET", "ROPE"],
    "food": ["APPLE", "BREAD", "CHEESE", "CAKE", "EGG", "ORANGE", "BANANA", "SOUP", "RICE",
             "FISH", "MEAT", "CARROT", "POTATO", "PIE", "SANDWICH", "CORN"],
    "drink": ["WATER", "MILK", "TEA", "COFFEE", "JUICE", "WINE"],
    "place": ["HOUSE", "GARDEN", "KITCHEN", "SCHOOL", "MARKET", "RIVER", "FOREST", "PARK",
              "STATION", "VILLAGE", "CITY", "FIELD", "HILL", "BEACH", "ROAD", "BRIDGE",
              "HARBOUR", "LIBRARY", "OFFICE", "SHOP", "CHURCH", "FARM", "ISLAND",
              "MOUNTAIN"],
    "adj_size": ["BIG", "SMALL", "LITTLE", "LARGE", "TALL", "SHORT", "LONG", "HUGE",
                 "TINY"],
    "adj_colour": ["RED", "BLUE", "GREEN", "YELLOW", "BLACK", "WHITE", "BROWN", "GREY",
                   "PINK", "PURPLE"],
    "adj_quality": ["OLD", "NEW", "YOUNG", "GOOD", "BAD", "NICE", "HAPPY", "SAD", "QUIET",
                    "LOUD", "CLEAN", "DIRTY", "WARM", "COLD", "HEAVY", "LIGHT", "FAST",
                    "SLOW", "STRANGE", "FAMOUS", "HUNGRY", "TIRED", "CLEVER", "BRAVE"],
    "adj_food": ["FRESH", "SWEET", "HOT", "COLD", "RIPE", "DELICIOUS"],
    "verb_see": ["SAW", "WATCHED", "FOUND", "LIKED", "HEARD", "FOLLOWED", "FORGOT",
                 "REMEMBERED", "NOTICED", "PAINTED", "CALLED", "HELPED", "VISITED"],
    "verb_take": ["TOOK", "BROUGHT", "CARRIED", "DROPPED", "BOUGHT", "SOLD", "OPENED",
                  "CLOSED", "LOST", "MOVED", "WASHED", "FIXED", "BROKE", "HID", "KEPT",
                  "PICKED", "SHOWED", "GAVE"],
    "verb_eat": ["ATE", "COOKED", "TASTED", "SHARED", "WANTED", "ORDERED"],
    "verb_drink": ["DRANK", "POURED", "SPILLED", "HEATED"],
    "verb_move": ["WALKED", "RAN", "DROVE", "SWAM", "FLEW", "HURRIED", "RETURNED", "WENT",
                  "CAME", "CLIMBED", "JUMPED", "WANDERED", "ROLLED", "TRAVELLED"],
    "verb_rest": ["SLEPT", "WAITED", "SAT", "STOOD", "SANG", "LAUGHED", "CRIED", "SMILED",
                  "WORKED", "PLAYED", "STAYED", "LISTENED", "DANCED", "SHOUTED", "RESTED"],
    "verb_say": ["SAID", "THOUGHT", "KNEW", "HOPED", "BELIEVED", "HEARD", "DREAMED",
                 "REMEMBERED", "TOLD", "WROTE"],
    "verb_imp": ["OPEN", "CLOSE", "BRING", "TAKE", "FIND", "WASH", "CARRY", "MOVE", "SHOW",
                 "PICK", "FIX", "HIDE", "KEEP", "DROP", "PAINT", "WATCH"],
    "prep_place": ["IN", "NEAR", "BEHIND", "UNDER", "INSIDE", "OUTSIDE", "ACROSS", "AROUND",
                   "BESIDE", "ABOVE", "BELOW", "AT"],
    "prep_dir": ["TO", "INTO", "FROM", "TOWARDS", "THROUGH", "PAST", "OVER", "ALONG"],
    "prep_with": ["WITH", "WITHOUT", "FOR"],
    "adverb": ["QUICKLY", "SLOWLY", "QUIETLY", "LOUDLY", "HAPPILY", "SADLY", "CAREFULLY",
               "SUDDENLY", "AGAIN", "TOGETHER", "ALONE", "EARLY", "LATE", "TODAY",
               "YESTERDAY", "OFTEN", "NEVER", "ALWAYS", "SOMETIMES", "SOON"],
    "time": ["MORNING", "AFTERNOON", "EVENING", "NIGHT", "MONDAY", "TUESDAY", "WEDNESDAY",
             "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY", "SUMMER", "WINTER", "SPRING",
             "AUTUMN"],
    "conj": ["AND", "BUT", "SO", "BECAUSE", "WHILE", "WHEN", "BEFORE", "AFTER", "THEN"],
    "pronoun": ["HE", "SHE", "WE", "THEY", "I", "YOU"],
    "interjection": ["YES", "NO", "OKAY", "HELLO", "THANKS", "SORRY", "PLEASE", "GOODBYE",
                     "WAIT", "STOP", "LISTEN", "WELL", "RIGHT", "MAYBE", "CERTAINLY"],
    "question": ["WHERE", "WHEN", "WHY", "HOW"],
}

# Plurals of the nouns that take them (spelled out: English plurals are irregular).
PLURALS = {
    "CAT": "CATS", "DOG": "DOGS", "HORSE": "HORSES", "BIRD": "BIRDS", "MOUSE": "MICE",
    "RABBIT": "RABBITS", "COW": "COWS", "SHEEP": "SHEEP", "GOAT": "GOATS", "DUCK": "DUCKS",
    "FOX": "FOXES", "WOLF": "WOLVES", "BEAR": "BEARS", "LION": "LIONS", "MONKEY": "MONKEYS",
    "FROG": "FROGS", "MAN": "MEN", "WOMAN": "WOMEN", "CHILD": "CHILDREN", "BOY": "BOYS",
    "GIRL": "GIRLS", "FARMER": "FARMERS", "TEACHER": "TEACHERS", "DOCTOR": "DOCTORS",
    "STUDENT": "STUDENTS", "FRIEND": "FRIENDS", "SAILOR": "SAILORS", "NURSE": "NURSES",
    "BOOK": "BOOKS", "BOX": "BOXES", "CHAIR": "CHAIRS", "KEY": "KEYS", "LETTER": "LETTERS",
    "BOTTLE": "BOTTLES", "CUP": "CUPS", "SHOE": "SHOES", "BALL": "BALLS", "BAG": "BAGS",
    "APPLE": "APPLES", "EGG": "EGGS", "ORANGE": "ORANGES", "CARROT": "CARROTS",
    "POTATO": "POTATOES", "BANANA": "BANANAS", "FLOWER": "FLOWERS", "TREE": "TREES",
}
WORDS["plant"] = ["TREE", "FLOWER", "ROSE", "GRASS", "BUSH"]


class SentenceGenerator:
    """Random English-like sentences of a chosen length, reproducible from a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, cls: str) -> str:
        return self.rng.choice(WORDS[cls])

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # --- phrases -------------------------------------------------------------------
    def adjectives(self, kinds: Sequence[str], p_first: float) -> List[str]:
        out: List[str] = []
        p = p_first
        for kind in kinds:  # adjective order as in English: size, quality, colour
            if self.chance(p):
                out.append(self.pick(kind))
                p *= 0.5
        return out

    def noun_phrase(self, cls: str, p_adj: float = 0.4, plural_ok: bool = True) -> List[str]:
        if cls == "person" and self.chance(0.15):
            return [self.pick("name")]
        noun = self.pick(cls)
        adj_kinds = {"food": ["adj_food", "adj_colour"], "drink": ["adj_food"],
                     "place": ["adj_size", "adj_quality"]}.get(
            cls, ["adj_size", "adj_quality", "adj_colour"])
        adjs = self.adjectives(adj_kinds, p_adj)
        if plural_ok and noun in PLURALS and self.chance(0.25):
            return [self.pick("det_plural")] + adjs + [PLURALS[noun]]
        det = "SOME" if cls == "drink" else self.pick("det")
        return [det] + adjs + [noun]

    def agent(self) -> List[str]:
        if self.chance(0.1):
            return [self.pick("pronoun")]
        return self.noun_phrase("person" if self.chance(0.65) else "animal")

    def place_phrase(self) -> List[str]:
        return [self.pick("prep_place")] + self.noun_phrase("place", p_adj=0.25, plural_ok=False)

    def modifiers(self, p: float) -> List[str]:
        out: List[str] = []
        if self.chance(p):
            out += self.place_phrase()
        if self.chance(p * 0.6):
            out.append(self.pick("adverb"))
        if self.chance(p * 0.3):
            out += ["IN", "THE", self.pick("time")] if self.chance(0.5) else ["ON", self.pick("time")]
        return out

    def verb_phrase(self) -> List[str]:
        kind = self.rng.choices(["see", "take", "eat", "drink", "move", "rest"],
                                weights=[3, 3, 2, 1, 2, 2])[0]
        if kind == "see":
            obj = self.noun_phrase(self.rng.choice(["person", "animal", "thing", "place", "plant"]))
            return [self.pick("verb_see")] + obj + self.modifiers(0.3)
        if kind == "take":
            out = [self.pick("verb_take")] + self.noun_phrase("thing")
            if self.chance(0.3):
                out += [self.pick("prep_dir")] + self.noun_phrase("place", 0.2, False)
            elif self.chance(0.2):
                out += [self.pick("prep_with")] + self.noun_phrase("person", 0.2)
            return out + self.modifiers(0.2)
        if kind == "eat":
            return [self.pick("verb_eat")] + self.noun_phrase("food") + self.modifiers(0.3)
        if kind == "drink":
            return [self.pick("verb_drink")] + self.noun_phrase("drink") + self.modifiers(0.3)
        if kind == "move":
            out = [self.pick("verb_move")]
            if self.chance(0.7):
                out += [self.pick("prep_dir")] + self.noun_phrase("place", 0.25, False)
            return out + self.modifiers(0.3)
        return [self.pick("verb_rest")] + self.modifiers(0.6)

    def clause(self) -> List[str]:
        return self.agent() + self.verb_phrase()

    # --- sentences -----------------------------------------------------------------
    def sentence_forms(self) -> List[Callable[[], List[str]]]:
        return [
            lambda: [self.pick("interjection")],
            lambda: [self.pick("interjection"), self.pick("interjection")],
            lambda: [self.pick("verb_imp")] + self.noun_phrase("thing", 0.3),
            lambda: [self.pick("verb_imp")] + self.noun_phrase("thing", 0.3) + self.place_phrase(),
            lambda: [self.pick("question"), "IS"] + self.noun_phrase(
                self.rng.choice(["thing", "person", "animal"]), 0.3, False),
            lambda: ["IS", "THERE"] + self.noun_phrase(self.rng.choice(["thing", "animal", "food"]),
                                                      0.3, False) + self.place_phrase(),
            lambda: self.noun_phrase(self.rng.choice(["thing", "animal", "person"]), 0.3, False)
            + ["IS"] + self.place_phrase(),
            lambda: self.noun_phrase(self.rng.choice(["thing", "animal", "food", "place"]), 0.2,
                                     False) + ["WAS", self.pick(self.rng.choice(
                                         ["adj_size", "adj_quality", "adj_colour"]))],
            self.clause,
            lambda: self.clause() + [self.pick("conj")] + self.clause(),
            lambda: self.agent() + [self.pick("verb_say"), "THAT"] + self.clause(),
            lambda: self.clause() + [self.pick("conj")] + self.clause() + [self.pick("conj")]
            + self.clause(),
        ]

    def sentence(self, num_words: int, max_tries: int = 2000) -> List[str]:
        """A sentence of exactly ``num_words`` words (1..MAX_WORDS)."""
        if not 1 <= num_words <= MAX_WORDS:
            raise ValueError(f"num_words must be in 1..{MAX_WORDS}, got {num_words}")
        forms = self.sentence_forms()
        # Long sentences come from the multi-clause forms: try those first for them.
        weights = [1.0] * len(forms)
        if num_words > 8:
            weights = [0.0] * 9 + [2.0, 2.0, 3.0]
        for _ in range(max_tries):
            words = self.rng.choices(forms, weights=weights)[0]()
            if len(words) == num_words:
                return words
        raise RuntimeError(f"grammar found no sentence of {num_words} words")

    def sample_length(self) -> int:
        """Lengths 1..MAX_WORDS: short commands and answers are common, the mode is ~8."""
        if self.chance(0.1):
            return self.rng.randint(1, 3)
        return min(MAX_WORDS, max(1, round(self.rng.gauss(9.0, 4.0))))

    def __call__(self) -> str:
        return " ".join(self.sentence(self.sample_length()))


def vocabulary() -> List[str]:
    """Every word the grammar can produce, sorted."""
    words = {w for ws in WORDS.values() for w in ws} | set(PLURALS.values())
    words |= {"IS", "THERE", "WAS", "THAT", "ON", "IN", "THE", "SOME"}
    return sorted(words)

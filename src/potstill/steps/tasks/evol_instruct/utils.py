"""The mutation prompts of Evol-Instruct (WizardLM, Xu et al., 2023) and seed words.

Each prompt asks the LLM to rewrite `<PROMPT>` (replaced by the instruction being evolved):
four *in-depth* mutations make it harder (add a constraint, deepen, concretize, ask for more
reasoning steps) and one *in-breadth* mutation writes a new, rarer instruction in the same
domain. The generators start each instruction from scratch with `FRESH_START`, whose
`<PROMPT>` is a few random words from `SEED_WORDS`.
"""

from __future__ import annotations

REWRITE_TEMPLATE = (
    "You are rewriting a prompt to make it more demanding for AI assistants, while keeping "
    "it sensible: a person must still understand it and be able to answer it.\n"
    "Keep everything in the prompt that is not plain text, such as tables, code or given "
    "inputs.\n"
    "How to make it more demanding: {method}\n"
    "Stay concise: the rewritten prompt may add only 10 to 20 words to the original one.\n"
    "Do not refer to 'the original prompt' or 'the rewritten prompt' in your answer.\n\n"
    "Original prompt:\n<PROMPT>\n\n"
    "Rewritten prompt:\n"
)
"""The in-depth rewriting prompt; `{method}` says how to make the prompt harder."""

CREATE_TEMPLATE = (
    "You are writing a new prompt inspired by the one below. It must belong to the same "
    "domain but deal with something less common. Make it about as long and as difficult as "
    "the prompt below, sensible, and answerable by a person.\n"
    "Do not refer to 'the given prompt' or 'the new prompt' in your answer.\n\n"
    "Given prompt:\n<PROMPT>\n\n"
    "New prompt:\n"
)
"""The in-breadth prompt: a new instruction in the same domain."""

FRESH_START_TEMPLATE = (
    "Write one question or request that uses one or more of these words: <PROMPT>"
)
"""The generators' first prompt for an instruction; `<PROMPT>` holds a few seed words."""

IN_DEPTH_METHODS: dict[str, str] = {
    "CONSTRAINTS": "add one more constraint or requirement to it.",
    "DEEPENING": "if it asks about a subject, ask about that subject in more depth and breadth.",
    "CONCRETIZING": "replace its general concepts with more specific ones.",
    "INCREASED_REASONING_STEPS": "if a few simple steps of thinking are enough to answer it, "
    "rewrite it so that it explicitly asks for reasoning in several steps.",
}

IN_DEPTH_TEMPLATES: dict[str, str] = {
    name: REWRITE_TEMPLATE.format(method=method) for name, method in IN_DEPTH_METHODS.items()
}
"""The four in-depth mutations (Evol-Complexity uses these alone)."""

MUTATION_TEMPLATES: dict[str, str] = {**IN_DEPTH_TEMPLATES, "BREADTH": CREATE_TEMPLATE}
"""`EvolInstruct`'s mutations: in-depth and in-breadth."""

GENERATION_MUTATION_TEMPLATES: dict[str, str] = {
    "FRESH_START": FRESH_START_TEMPLATE,
    **MUTATION_TEMPLATES,
}
"""`EvolInstructGenerator`'s mutations: starting afresh, in-depth and in-breadth."""

_SEED_WORDS_TEXT = """
    account acid adventure airport algebra alloy anchor animal apple archive arithmetic army
    atlas atom autumn bacteria badge bakery balance balloon bamboo bank battery beach bee
    bicycle biology blanket blood bone book border bottle bread bridge budget building cable
    calendar camera canal candle canyon carbon career castle cell census chemistry chess
    circuit city climate clock cloud coast coffee comet compass computer concert contract
    copper cotton court crystal culture currency customer dance data debate desert diamond
    diet dinosaur disease doctor dolphin drought economy ecosystem election electricity
    empire energy engine erosion evolution exam factory farm fashion fence festival fiber
    film fire fish flag flood flower fog forest fossil fraction friendship fungus furniture
    galaxy garden gene geometry glacier glass gold government grammar gravity harbor harvest
    health helmet history honey hospital hotel humor hurricane ice idea insect insurance
    invention island journey justice kitchen knowledge lake language laser law leaf library
    light lighthouse literature loan machine magnet map market marriage memory metal
    microscope migration mineral mirror money moon mountain museum music myth navy nerve
    network newspaper novel nutrition ocean oil orbit orchestra oxygen painting paper parade
    passport pattern philosophy photograph physics piano planet plastic poetry pollution
    population port pottery poverty probability protein puzzle pyramid radio rain recipe
    religion reptile restaurant revolution rice river robot rocket salt satellite school
    science sculpture season seed ship silk skeleton soil solar song sound space spice
    sport statistics steam storm sugar symphony telescope temperature theater tide timber
    tomato tourism trade traffic train translation treaty tree tunnel university vaccine
    valley village vinegar violin virus volcano vote wage water weather whale wheat wind
    wine wool writing yeast
    """
SEED_WORDS: tuple[str, ...] = tuple(_SEED_WORDS_TEXT.split())
"""Common English nouns the generators draw their seed words from."""

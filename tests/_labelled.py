"Labelled toy teacher traces for the two-stage (negatives and preference) tests: per problem two correct traces and one wrong one."
from reasondistill.records import Trace

def labelled_traces(probs) -> list:
    "Samples 0 and 2 correct (2 differs by a trailing space), sample 1 wrong (the answer plus one, mod 10)."
    out = []
    for p in probs:
        good = f'<think>\n{p.question.split(": ")[-1]}\n</think>\nThe answer is {p.answer}.'
        bad = str((int(p.answer) + 1) % 10)
        out += [Trace(p.id, 0, 't', '', good, answer=p.answer, verdict='correct', finish_reason='stop'),
                Trace(p.id, 1, 't', '', good.replace(f'is {p.answer}.', f'is {bad}.'), answer=bad, verdict='wrong', finish_reason='stop'),
                Trace(p.id, 2, 't', '', good + ' ', answer=p.answer, verdict='correct', finish_reason='stop')]
    return out

#!/usr/bin/env python3
"""Fixtures for `vqa_accuracy`: per-question accuracies from the official VQA evaluation
script (GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation/vqaEval.py), both versions:

  current  = commit a013f00 (2021-03-11, "Fixed processing answers bug")
  pre2021  = commit 77bb365 (identical scoring to 458a8b2, the version LAVIS copies)

The script is not pip-installable, so this generator runs its real source: get the two files
with `git show a013f00:PythonEvaluationTools/vqaEvaluation/vqaEval.py > vqaEval_current.py`
(and 77bb365 for vqaEval_pre2021.py) in a clone of https://github.com/GT-Vision-Lab/VQA and
pass their paths. The only edit made on loading is turning the two Python 2 `print "..."`
statements into calls, so the class runs under Python 3 (as LAVIS runs it).

    python3 scripts/make_metric_fixtures_vqa.py vqaEval_current.py vqaEval_pre2021.py
Writes tests/fixtures/metrics/vqa.json.
"""
import json
import os
import random
import re
import sys

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "metrics", "vqa.json")


def load_vqa_eval(path):
    src = open(path, encoding="utf-8").read()
    src = re.sub(r'print "([^"]*)"', r'print("\1")', src)
    ns = {}
    exec(compile(src, path, "exec"), ns)
    return ns["VQAEval"]


class FakeVQA:
    """The two attributes VQAEval reads: `qa` and `getQuesIds()`."""

    def __init__(self, qa):
        self.qa = qa

    def getQuesIds(self):
        return list(self.qa.keys())


def score(VQAEval, cases):
    gts, res = {}, {}
    for qid, (pred, answers) in enumerate(cases):
        gts[qid] = {"question_id": qid, "question_type": "what", "answer_type": "other",
                    "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                for i, a in enumerate(answers)]}
        res[qid] = {"question_id": qid, "answer": pred}
    ev = VQAEval(FakeVQA(gts), FakeVQA(res), n=2)
    per = {}
    ev.setEvalQA = lambda qid, acc: per.__setitem__(qid, acc)  # keep the unrounded accuracy
    devnull = open(os.devnull, "w")
    stdout, sys.stdout = sys.stdout, devnull
    try:
        ev.evaluate()
    finally:
        sys.stdout = stdout
    return [per[q] for q in range(len(cases))], ev.accuracy["overall"]


HAND = [
    ("yes", ["yes"] * 10),
    ("Yes", ["yes"] * 10),
    ("yes.", ["yes"] * 10),
    (" yes ", ["yes"] * 10),
    ("yes", ["yes"] * 9 + ["no"]),
    ("Yes", ["yes"] * 9 + ["no"]),
    ("two", ["2"] * 5 + ["two"] * 5),
    ("two", ["two"] * 9 + ["2"]),
    ("2", ["two"] * 9 + ["2"]),
    ("Two", ["2", "two", "2", "2", "two", "2", "2", "2", "2", "2"]),
    ("the dog", ["dog"] * 4 + ["a dog"] * 3 + ["the dogs"] * 3),
    ("a dog", ["dog"] * 10),
    ("3,000", ["3000"] * 6 + ["3,000"] * 4),
    ("hello-world, 1,2", ["helloworld 12"] * 5 + ["hello world"] * 5),
    ("t-shirt", ["t shirt"] * 3 + ["tshirt"] * 3 + ["t-shirt"] * 4),
    ("Dont", ["don't"] * 5 + ["dont"] * 5),
    ("cant", ["can't"] * 2 + ["cannot"] * 8),
    ("u.s.", ["us"] * 4 + ["usa"] * 6),
    ("2.5", ["2.5"] * 3 + ["2"] * 7),
    ("5.", ["5"] * 8 + ["five"] * 2),
    ("none", ["0"] * 5 + ["none"] * 5),
    ("zero", ["0"] * 5 + ["zero"] * 5),
    ("ten", ["10"] * 4 + ["ten"] * 6),
    ("eleven", ["11"] * 4 + ["eleven"] * 6),
    ("red and white", ["red and white"] * 3 + ["red/white"] * 3 + ["white and red"] * 4),
    ("red/white", ["red and white"] * 3 + ["red white"] * 3 + ["white"] * 4),
    ("yes!", ["yes"] * 7 + ["no"] * 3),
    ("left\tside", ["left side"] * 5 + ["left"] * 5),
    ("left\nside", ["left side"] * 10),
    ("(yes)", ["yes"] * 6 + ["maybe"] * 4),
    ("@home", ["home"] * 6 + ["at home"] * 4),
    ("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.h.i.j",
     ["abcdefghijklmnopqrstuvwxyzabcdefghij"] * 5 + ["x"] * 5),
    ("Café", ["café"] * 5 + ["cafe"] * 5),
    ("ÉCOLE", ["école"] * 10),
    ("", ["yes"] * 5 + ["no"] * 5),
    ("", [""] * 10),
    ("no", ["no"] * 2 + ["yes"] * 8),
    ("no", ["no"] * 1 + ["yes"] * 9),
    ("no", ["no"] * 3 + ["yes"] * 7),
    ("no", ["no"] * 4 + ["yes"] * 6),
    ("it's", ["its"] * 5 + ["it's"] * 5),
    ("youre", ["you're"] * 5 + ["youre"] * 5),
    ("Im", ["i'm"] * 5 + ["im"] * 5),
    ("somebody'd", ["somebodyd"] * 5 + ["somebody'd"] * 5),
    ("the the the", ["the"] * 5 + [""] * 5),
    ("an apple", ["apple"] * 3 + ["an apple"] * 3 + ["apples"] * 4),
    ("1, 2", ["12"] * 4 + ["1 2"] * 6),
    ("x ;y", ["x y"] * 4 + ["xy"] * 6),
    ("yes ", ["yes "] * 10),
    ("yes", ["yes ", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes"]),
    ("Yes", ["Yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes"]),
    ("10:30", ["10:30"] * 5 + ["1030"] * 5),
    ("$5", ["$5"] * 4 + ["5"] * 6),
    ("50%", ["50%"] * 4 + ["50"] * 6),
]

WORDS = ["yes", "no", "2", "two", "Two", "red", "the red", "a cat", "cats", "3,000", "3000",
         "t-shirt", "tshirt", "don't", "dont", "u.s.", "us", "2.5", "5.", "none", "0",
         "ten", "10", "left", "right side", " yes", "yes.", "Yes!", "white/red", "(a)", "it's"]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    current, pre2021 = load_vqa_eval(sys.argv[1]), load_vqa_eval(sys.argv[2])
    rng = random.Random(7)
    cases = list(HAND)
    while len(cases) < 300:
        pool = rng.sample(WORDS, rng.randint(1, 4))
        answers = [rng.choice(pool) for _ in range(10)]
        pred = rng.choice(WORDS + answers)
        cases.append((pred, answers))
    cur, cur_overall = score(current, cases)
    old, old_overall = score(pre2021, cases)
    rows = [{"pred": p, "answers": a, "current": c, "pre2021": o}
            for (p, a), c, o in zip(cases, cur, old)]
    out = {"rows": rows, "overall_current": cur_overall, "overall_pre2021": old_overall}
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    print(f"wrote {len(rows)} questions; overall current {cur_overall}, pre2021 {old_overall}")


if __name__ == "__main__":
    main()

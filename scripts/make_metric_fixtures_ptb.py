#!/usr/bin/env python3
"""Golden corpus for `ptb_tokenize`: messy caption strings tokenized by the real Java
Stanford PTBTokenizer 3.4.1 that ships inside pip's pycocoevalcap, with the exact command line
pycocoevalcap uses (`-preserveLines -lowerCase`), then pycocoevalcap's punctuation filter.

Each caption is tokenized on its own (one input file per caption, through the tokenizer's own
`-ioFileList` mode, one JVM for all), because that is what a per-row SQL function can promise;
the batch file that pycocoevalcap writes lets a caption's last token depend on the next caption.

Run by hand (needs java and `pip install pycocoevalcap`):
    python3 scripts/make_metric_fixtures_ptb.py
Writes tests/fixtures/metrics/ptb_corpus.json: [{"text", "java", "tokens"}...].
"""
import json
import os
import random
import subprocess
import tempfile

from pycocoevalcap.tokenizer import ptbtokenizer

JAR = os.path.join(os.path.dirname(ptbtokenizer.__file__), ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
PUNCT = ptbtokenizer.PUNCTUATIONS
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "metrics", "ptb_corpus.json")

HAND = [
    "A man riding a wave on top of a surfboard.",
    "A dog (brown) sits on the grass.",
    "Two [red] and {blue} kites.",
    "WOW!!! Really?! w/ milk",
    "The dog's toy isn't here; don't touch it.",
    "I can't, won't, cannot and I'm gonna wanna gotta lemme gimme.",
    "The dogs' bowls are on the table.",
    "rock'n'roll at 5 o'clock in the '90s, ma'am.",
    "The man\u2019s hat is \u201cred\u201d and \u2018blue\u2019.",
    "He ate 2 1/2 pizzas and \u00bd of a cake.",
    "It costs \u20ac5, \u00a33 or 10\u00a2 or $4.50 or US$3.",
    "Tom &amp; Jerry &lt;3 AT&T vs rock&roll.",
    "The game \u2014 a long one \u2013 ended\u2026 finally...",
    "A cat \U0001F431 sleeping\U0001F634on a couch.",
    "STOP!STOP! v1.2 3.5mm 100m 1,000,000 people 3.14159",
    "Mr. Smith and Mrs. Jones met Dr. Who at St. Paul's in the U.S. e.g. at 5 a.m. on No. 5.",
    "He bought 5 lbs. of apples, etc. and went to Calif. Inc. yesterday.",
    "Visit http://www.example.com/path?x=1 or www.google.com or mail me at foo@bar.com.",
    "@user #hashtag :) :-( ;) <3 ^_^",
    "  leading and trailing spaces   ",
    "tabs\tbetween\twords\t\tand  double  spaces",
    "",
    "   ",
    "...",
    "!!!",
    "-",
    "--",
    "a - b -- c --- d ---- e",
    "well-known state-of-the-art co-op e-mail x-ray",
    "\"Quoted\" 'single' ``latex'' `back`",
    "She said, \"Hello!\" and left.",
    "'Tis the season. 'Twas the night. Y'all come back.",
    "C'mon, it's li'l ol' me, nor'easter s'mores.",
    "The U.S.A. and the U.K. and the E.U.",
    "Fig. 3 shows ca. 5 items; see p. 4 and pp. 10-12.",
    "Call 555-1234 or (650) 555-1234 or +1 650 555 1234.",
    "On 12/25/2014 and 1-2-2015 at 10:30pm.",
    "Temperature 98.6\u00b0F and 37\u00b0C \u00d7 2 \u00f7 3",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 se\u00f1or \u00fcber STRASSE stra\u00dfe",
    "\u0130stanbul \u0130I \u03a3\u039f\u03a6\u0399\u0391 \u039f\u0394\u039f\u03a3",
    "Chinese \u4e2d\u6587\u5b57 and Japanese \u3072\u3089\u304c\u306a\u3000full width",
    "soft\u00adhyphen and non\u00a0breaking space",
    "zero\u200bwidth and BOM\ufeff here",
    "C++ and C# and F# programming",
    "The file report.pdf and image.JPEG and data.tar.gz",
    "1st 2nd 3rd 4th 21st",
    "He's she'd they'll we've you're I'd",
    "DON'T CAN'T WON'T ISN'T",
    "A MAN RIDING A HORSE.",
    "Don't stop-believing!",
    "It's 5:00 p.m. now.",
    "i.e. the end, cf. Smith vs. Jones",
    "The Ph.D. student and the M.D.",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sept. Oct. Nov. Dec.",
    "Jan. 5 and Feb. The end",
    "U.S. Army and U.S. forces",
    "A. Lincoln and J. F. Kennedy",
    "Hello...world....again.....more......",
    ". . . spaced dots . .",
    "price: $5; time: 5pm, place: N.Y.",
    "~tilde ^caret |pipe \\backslash *star* =equals+ plus% percent",
    "<b>bold</b> <br/> <!-- comment -->",
    "a<b and c>d and 3<4",
    "50% off & more",
    "#1 fan ##hash",
    "under_score __init__",
    "email@domain.co.uk and a@b",
    "O'Neil O'Brien D'Angelo l'homme",
    "The children's toys' boxes.",
    "John's, Mary's; the boss's.",
    "don't'",
    "'quoted'",
    "''double single''",
    "\u00abguillemets\u00bb and \u2039single\u203a",
    "fractions 3/4 and 1\u20442 and \u2153",
    "2 3/4 cups",
    "-5 degrees and +3 and -3.5",
    "1,000.50 and .5 and 5.",
    "x-ray 3-D 24/7 9/11",
    "and/or he/she w/o",
    "CAPS LOCK SENTENCE WITH NUMBERS 123",
    "mIxEd CaSe WoRdS",
    "a\u2028line separator",
    "Some \u2018curly\u2019 apostrophe\u2019s",
    "ain't y'know ya'll",
    "wanna gonna gotta",
    "cannot Cannot CANNOT",
    "there're 'em 'til 'cause",
    "12:30 3:45:10",
    "#hashtag @mention",
    "A.B.C. D.E.F",
    "etc.",
    "etc. Then",
    "etc. then",
    "Co. Ltd.",
    "pty. ltd.",
    "I.",
    "Z. Then",
    "It was the U.S. The end.",
    "It was the U.S. the end.",
    "the man at No. 10",
    "in Fig.3",
    "'90 and '90s",
    "\u00bfQu\u00e9? \u00a1Hola!",
    "a\u00a0b",
    "The 1/2 way",
    "The 12 1/2 way",
    "the 1234 5678/9012 x",
    "line one\rline two",
    "para\u2028graph and\u2029more\x0bvertical\x0cfeed",
    "NUL\x00char and DEL\x7fchar",
    "&quot;quoted&quot; and &apos;apos&apos; and &AMP; caps",
    "1.2.3 and 1..2 and ---> arrow and ....",
    "O'Reilly's y'know 'em 'till N'T DON'T GONNA Cannot",
    "c++ C++ f# c#",
    "an e-mail: john.doe@example.com, or <john@example.com>",
    "see https://example.com/a_b-c?q=1&r=2. Then stop",
    "url with emoji http://x.com/\U0001F600path ok",
    "\U0001F600\U0001F601 only emoji",
    "A\U0001F600B",
    "tab\t\tand\u3000ideographic\u2003em space",
    "m\u00e4dchen \u00c4RGER \u00d8resund \u0141\u00f3d\u017a",
    "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u043f\u0440\u0438\u0432\u0435\u0442 \u0393\u03b5\u03b9\u03ac",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 \ud55c\uad6d\uc5b4",
    "ﬁne ligature and \u2160 roman \u00b2 squared x\u00b2 H\u2082O",
    "1\u00bd cups and \u00be and \u215b eighth",
    "\u00a5100 and \u20b9500 and \u20a9 won \u0e3f baht",
    "The `quote' and ``double'' and \u201elow\u201c",
    "it's it\u2019s it`s it\u2018s",
    "(650)555-1234 and 650.555.1234 and +44 20 7946 0958",
    "5-year-old 10-15 1990-2000 mid-1990s",
    "Mt. Everest and Ft. Worth and Gov. Brown and Sen. Smith",
    "the co. ltd and pty. limited and Co. Ltd",
    "I.B.M. and A.T.&T. and U.S.S.R. and U.S.-U.K. relations",
    "No. 1 and no. 2 and nos. 3 and figs. 4 and art. 5 and op. 6",
    "<p class=\"x\">text</p> and <br> and <a href='y'>",
    "a > b < c >> d << e",
    ":-) :-P ;-D =) :] :[ :| :\\ :O",
    "-_- ^^ ^_^ o_O (^_^) (>_<) x_x",
    "**bold** ***x*** \\*esc\\*",
    "#1 ##2 @3 @@4 _5 __6",
    "a/b/c and 1/2/3 and x/y and km/h",
    "word. Word, word; word: word! word? word...",
    "WORD. WORD, WORD; WORD: WORD! WORD? WORD...",
    "\"Hi,\" she said. \"Bye.\"",
    "'Hi,' she said. 'Bye.'",
    "dogs' cats' kids' toys'",
    "rock 'n' roll and rock'n roll",
    "don't've couldn't've y'all'd've",
    "3:30pm 3:30 pm 3pm 3 p.m. 3 P.M.",
    "$3.50 US$5 C$10 A$ 3 HK$ 4 S$5",
    "10% 10 % 10pct",
    "e.g., i.e., etc., vs., cf.",
    "Inc., Corp., Ltd., Co.,",
    "Calif., Mass., Ill., Wash., Pa., Tex.",
    "Jan. 1, Feb. 2, Sept. 3, Dec. 4",
    "Mon. Tue. Wed. Thu. Fri. Sat. Sun.",
    "St. Louis, Dr. No, Mr. T",
    "a.m. p.m. A.M. P.M.",
    "U.S. U.S.A. US USA u.s.",
    "ph.d. Ph.D. PhD",
    "x.y.z x.y.z. X.Y.Z.",
    "3.14.15 3,14,15 3.14,15",
    "1st. 2nd. 3rd.",
    "co-op. re-do. pre-K.",
    "a-b-c-d-e-f-g",
    "state-of-the-art.",
    "well\u2010known non\u2011breaking hy\u00adphen",
    "\u2014dash\u2014 \u2013dash\u2013 \u2015bar",
    "ellipsis\u2026 and ... and . . . and ....",
    "SPACE  BEFORE .",
    " .leading dot",
    "trailing dot .",
    "?!?! !?!? ?? !!",
    "\u00bfQu\u00e9 pasa? \u00a1Ay!",
    "semi;colon colon:colon comma,comma",
    "x=y a+b c*d e^f g~h i|j k\\l",
    "\u00a7 section \u00b6 para \u2020 dagger \u2022 bullet \u00b7 middot",
    "\u00a9 2014 \u00ae \u2122",
    "\u2190 \u2192 \u2194 \u21d2",
    "\u2200x \u2203y \u2208 \u2211 \u221e",
    "\u00f7 \u00d7 \u00b1 \u2260 \u2264 \u2265",
]

WORDS = ("a man woman dog cat two three sitting standing riding on in with of the near "
         "bus train table pizza red blue small large kitchen street horse tennis ball "
         "player frisbee skateboard laptop phone child children people giraffe zebra "
         "elephant sheep bird plate food sandwich bike motorcycle umbrella beach").split()
FRAGMENTS = [
    "dog's", "isn't", "don't", "can't", "won't", "cannot", "they're", "we've", "I'm",
    "it's", "let's", "y'all", "o'clock", "'90s", "ma'am", "rock'n'roll", "dogs'", "James'",
    "man\u2019s", "don\u2019t", "(a)", "(brown)", "[x]", "{y}", "\"hi\"", "'yo'", "``z''",
    "3,000", "1.5", "2.25", "3.5mm", "100m", "10:30", "1/2", "2 1/2", "$5", "US$7",
    "\u20ac3", "\u00a32", "5\u00a2", "\u00bd", "50%", "#3", "&amp;", "AT&T", "rock&roll", "R&D",
    "Mr.", "Mrs.", "Dr.", "St.", "U.S.", "e.g.", "i.e.", "a.m.", "p.m.", "No. 5", "lbs.",
    "etc.", "Inc.", "Co.", "Jr.", "vs.", "ca. 5", "fig. 2", "Calif.", "Jan.", "Ave.",
    "well-known", "co-op", "x-ray", "state-of-the-art", "e-mail", "--", "-", "---", "\u2014",
    "\u2013", "\u2026", "...", "!", "?", "!!", "?!", ",", ";", ":", ".", "w/", "and/or",
    "STOP!STOP!", "v1.2", "C++", "C#", "foo.jpg", "www.example.com",
    "http://coco.org/x", "a@b.com", "@bob", "#tag", ":)", ";-)", "^_^", "<3", "<", ">",
    "&", "*", "**", "=", "+", "~", "|", "\\", "^", "%", "caf\u00e9", "na\u00efve", "\u00fcber",
    "stra\u00dfe", "\u4e2d\u6587", "\U0001F600", "\U0001F436dog", "\u00a0", "\t", "  ", "\u3000",
    "soft\u00adhyphen", "gonna", "wanna", "gotta", "'tis", "'twas", "c'mon", "li'l", "O'Neil",
    "WOW", "HELLO", "Hello", "DOG'S", "CAN'T", "Ph.D.", "U.K.", "A.", "I.", "1st", "2nd",
    "(650) 555-1234", "555-1234", "12/25/2014", "-5", "+3", ".5", "5.", "1,000,000",
    "3.14", "98.6\u00b0F", "\u00d7", "\u00bfqu\u00e9?", "\u00a1hola!", "<b>", "</b>",
    "_", "__", "@", "##", "'", "''", "`", "\"", "\u201c", "\u201d", "\u2018", "\u2019",
    "\u00ab", "\u00bb", "\u2039", "\u203a", "a.k.a.", "cf.", "St", "Mt.", "Ft.", "Gov.",
]


EXTRA = ["O'Reilly's", "'em", "'till", "GONNA", "Cannot", "&quot;", "&apos;s", "http://a.b/c",
         "john@x.org", "<br>", "<p>", "-->", "....", ":-)", "(^_^)", "x\u00b2", "\u00bd", "\u2153",
         "\u00a5", "\u20b9", "\u201e", "\u2010", "\u00ad", "\u2028", "\r", "\x0b", "(650)555-1234",
         "650.555.1234", "5-year-old", "1990-2000", "A.T.&T.", "U.S.-U.K.", "nos.", "figs.",
         "co. ltd", "pty. limited", "don't've", "3:30pm", "C$10", "10pct", "km/h", "a/b/c",
         "\u0645\u0631\u062d\u0628\u0627", "\u043f\u0440\u0438", "\ud55c\uad6d", "\u0928\u092e", "I.", "Z.",
         "The", "He", "It", "A", "But", "Mr.", "SO", "etc", "Jan", "Calif", "Inc", "e.g", "Ph.D",
         "N.Y.", "a.k.a.", "vs", "Ste.", "Ave.", "'90", "'s", "'re", "n't", "N'T", "'", "`", "''"]


def random_caption(rng):
    n = rng.randint(1, 14)
    parts = []
    for _ in range(n):
        r = rng.random()
        if r < 0.45:
            w = rng.choice(WORDS)
            c = rng.random()
            if c < 0.15:
                w = w.capitalize()
            elif c < 0.2:
                w = w.upper()
            parts.append(w)
        elif r < 0.8:
            parts.append(rng.choice(FRAGMENTS))
        else:
            parts.append(rng.choice(EXTRA))
    out = ""
    for p in parts:
        sep = rng.choice([" ", " ", " ", " ", "", "  ", "\t"]) if out else rng.choice(["", "", " "])
        out += sep + p
    if rng.random() < 0.5:
        out += rng.choice([".", ".", "!", "?", " .", "...", "", "\u2026", " ", ".\t"])
    return out


def java_tokenize(captions):
    """Runs the Java tokenizer (pycocoevalcap's flags) on each caption as its own file."""
    with tempfile.TemporaryDirectory() as d:
        pairs = []
        for i, c in enumerate(captions):
            src, dst = os.path.join(d, f"in{i}"), os.path.join(d, f"out{i}")
            with open(src, "w", encoding="utf-8") as f:
                f.write(c.replace("\n", " "))
            pairs.append(f"{src} {dst}")
        lst = os.path.join(d, "list")
        with open(lst, "w") as f:
            f.write("\n".join(pairs) + "\n")
        subprocess.run(["java", "-cp", JAR, "edu.stanford.nlp.process.PTBTokenizer",
                        "-preserveLines", "-lowerCase", "-ioFileList", lst],
                       check=True, stderr=subprocess.DEVNULL)
        outs = []
        for i in range(len(captions)):
            with open(os.path.join(d, f"out{i}"), encoding="utf-8") as f:
                outs.append(f.read())
        return outs


def filter_punct(java_out):
    """pycocoevalcap's filter, applied to every output line, the lines joined by a space."""
    lines = [" ".join(w for w in line.rstrip().split(" ") if w not in PUNCT)
             for line in java_out.split("\n")]
    return " ".join(l for l in lines if l)


def main():
    rng = random.Random(20141)
    captions = list(HAND)
    while len(captions) < 1600:
        captions.append(random_caption(rng))
    outs = java_tokenize(captions)
    rows = [{"text": c, "java": o, "tokens": filter_punct(o)} for c, o in zip(captions, outs)]
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False, indent=0)
    print(f"wrote {len(rows)} captions to {OUT}")


if __name__ == "__main__":
    main()

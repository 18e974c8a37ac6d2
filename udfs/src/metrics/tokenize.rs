//! pycocoevalcap's tokenisation without Java: Stanford PTBTokenizer 3.4.1 as pycocoevalcap
//! runs it (`-preserveLines -lowerCase`, default options plus `tokenizeNLs`), then its
//! punctuation filter.
//!
//! The Java tokenizer is a JFlex scanner (`PTBLexer.flex` at CoreNLP tag `v3.4.1`). Rather than
//! re-deriving its behaviour case by case, this module keeps its macro definitions and rules
//! nearly verbatim and reproduces JFlex's matching discipline: at each position the longest
//! match wins (trailing context `a/b` counts towards the length), ties go to the earlier rule,
//! and the token of `a/b` is the longest prefix matching `a` whose remainder matches `b`. All
//! rules are compiled into one lazy DFA so each token costs one pass over its text.
//!
//! Differences from running the jar, on purpose: a caption is tokenized on its own (the jar
//! sees pycocoevalcap's whole batch file, so a caption's last token can depend on the next
//! caption), and line breaks inside a caption (`\r`, U+2028, ...) separate tokens instead of
//! starting a new output line.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;

use super::caption::py_isspace;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::{Anchored, Input, MatchKind};

/// pycocoevalcap's `PUNCTUATIONS`: tokens dropped after tokenisation. The bracket names are
/// upper case there but lower-cased by then, so brackets survive (as in the reference).
const PUNCTUATIONS: [&str; 17] = [
    "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
    "...", ";",
];

/// Tokenizes one caption exactly as pycocoevalcap would (lower-cased PTB tokens, its punctuation
/// removed), joined by single spaces.
pub fn ptb_tokenize(text: &str) -> String {
    let raw = ptb_tokenize_raw(text);
    let mut out = String::with_capacity(raw.len());
    // pycocoevalcap's filter, per output line: `line.rstrip().split(' ')`, then drop the marks.
    for line in raw.split('\n') {
        for tok in line.trim_end_matches(py_isspace).split(' ') {
            if tok.is_empty() || PUNCTUATIONS.contains(&tok) {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(tok);
        }
    }
    out
}

/// The raw output of the Java tokenizer for one caption (before the punctuation filter):
/// lower-cased tokens separated by spaces, one line per line of input.
pub fn ptb_tokenize_raw(text: &str) -> String {
    let mut out = String::new();
    let mut line_start = true;
    LEXER.raw_tokens(text, |tok| match tok {
        None => {
            out.push('\n');
            line_start = true;
        }
        Some(t) => {
            if !line_start {
                out.push(' ');
            }
            line_start = false;
            if t.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
                out.push_str(&t.to_lowercase());
            } else {
                out.push_str(t);
            }
        }
    });
    out
}

// ---------------------------------------------------------------------------------------------
// The JFlex specification (macros verbatim from PTBLexer.flex v3.4.1).

const MACROS: &[(&str, &str)] = &[
    (
        "SGML",
        r#"\<([!\?][A-Za-z\-][^>\r\n]*|[A-Za-z][A-Za-z0-9_:\.\-]*([ ]+([A-Za-z][A-Za-z0-9_:\.\-]*|[A-Za-z][A-Za-z0-9_:\.\-]*[ ]*=[ ]*('[^']*'|\"[^\"]*\")))*[ ]*\/?|\/[A-Za-z][A-Za-z0-9_:\.\-]*)[ ]*\>"#,
    ),
    ("SPMDASH", r"&(MD|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015]"),
    ("SPAMP", r"&amp;"),
    ("SPPUNC", r"&(HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);"),
    ("SPLET", r"&[aeiouAEIOU](acute|grave|uml);"),
    ("SPACE", r"[ \t\u00A0\u2000-\u200A\u3000]"),
    ("SPACES", r"{SPACE}+"),
    ("NEWLINE", r"\r|\r?\n|\u2028|\u2029|\u000B|\u000C|\u0085"),
    ("SPACENL", r"({SPACE}|{NEWLINE})"),
    ("SPACENLS", r"{SPACENL}+"),
    ("SENTEND", r"{SPACENL}({SPACENL}|[:uppercase:]|{SGML})"),
    ("DIGIT", r"[:digit:]|[\u07C0-\u07C9]"),
    ("DATE", r"{DIGIT}{1,2}[\-\/]{DIGIT}{1,2}[\-\/]{DIGIT}{2,4}"),
    ("NUM", r"{DIGIT}+|{DIGIT}*([.:,\u00AD\u066B\u066C]{DIGIT}+)+"),
    ("NUMBER", r"[\-+]?{NUM}"),
    (
        "SUBSUPNUM",
        r"[\u207A\u207B\u208A\u208B]?([\u2070\u00B9\u00B2\u00B3\u2074-\u2079]+|[\u2080-\u2089]+)",
    ),
    ("FRAC", r"({DIGIT}{1,4}[- \u00A0])?{DIGIT}{1,4}(\\?\/|\u2044){DIGIT}{1,4}"),
    ("FRAC2", r"[\u00BC\u00BD\u00BE\u2153-\u215E]"),
    ("DOLSIGN", r"([A-Z]*\$|#)"),
    (
        "DOLSIGN2",
        r"[\u00A2\u00A3\u00A4\u00A5\u0080\u20A0\u20AC\u060B\u0E3F\u20A4\uFFE0\uFFE1\uFFE5\uFFE6]",
    ),
    (
        "LETTER",
        r"([:letter:]|{SPLET}|[\u00AD\u0237-\u024F\u02C2-\u02C5\u02D2-\u02DF\u02E5-\u02FF\u0300-\u036F\u0370-\u037D\u0384\u0385\u03CF\u03F6\u03FC-\u03FF\u0483-\u0487\u04CF\u04F6-\u04FF\u0510-\u0525\u055A-\u055F\u0591-\u05BD\u05BF\u05C1\u05C2\u05C4\u05C5\u05C7\u0615-\u061A\u063B-\u063F\u064B-\u065E\u0670\u06D6-\u06EF\u06FA-\u06FF\u070F\u0711\u0730-\u074F\u0750-\u077F\u07A6-\u07B1\u07CA-\u07F5\u07FA\u0900-\u0903\u093C\u093E-\u094E\u0951-\u0955\u0962-\u0963\u0981-\u0983\u09BC-\u09C4\u09C7\u09C8\u09CB-\u09CD\u09D7\u09E2\u09E3\u0A01-\u0A03\u0A3C\u0A3E-\u0A4F\u0A81-\u0A83\u0ABC-\u0ACF\u0B82\u0BBE-\u0BC2\u0BC6-\u0BC8\u0BCA-\u0BCD\u0C01-\u0C03\u0C3E-\u0C56\u0D3E-\u0D44\u0D46-\u0D48\u0E30-\u0E3A\u0E47-\u0E4E\u0EB1-\u0EBC\u0EC8-\u0ECD])",
    ),
    ("WORD", r"{LETTER}({LETTER}|{DIGIT})*([.!?]{LETTER}({LETTER}|{DIGIT})*)*"),
    (
        "FILENAME_EXT",
        r"bat|bmp|c|class|cgi|cpp|dll|doc|docx|exe|gif|gz|h|htm|html|jar|java|jpeg|jpg|mov|mp3|pdf|php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip",
    ),
    ("FILENAME", r"({LETTER}|{DIGIT})+([.]({LETTER}|{DIGIT})+)*([.]{FILENAME_EXT})"),
    ("APOS", r"['\u0092\u2019]|&apos;"),
    ("APOSETCETERA", r"{APOS}|[`\u0091\u2018\u201B]"),
    ("HYPHEN", r"[-_\u058A\u2010\u2011]"),
    (
        "THING",
        r"([dDoOlL]{APOSETCETERA}([:letter:]|[:digit:]))?([:letter:]|[:digit:])+({HYPHEN}([dDoOlL]{APOSETCETERA}([:letter:]|[:digit:]))?([:letter:]|[:digit:])+)*",
    ),
    ("THINGA", r"[A-Z]+(([+&]|{SPAMP})[A-Z]+)+"),
    ("THING3", r"[A-Za-z0-9]+(-[A-Za-z]+){0,2}(\\?\/[A-Za-z0-9]+(-[A-Za-z]+){0,2}){1,2}"),
    (
        "ACRO",
        r"[A-Za-z](\.[A-Za-z])*|(Canada|Sino|Korean|EU|Japan|non)-U\.S|U\.S\.-(U\.K|U\.S\.S\.R)",
    ),
    (
        "ACRO2",
        r"[A-Za-z](\.[A-Za-z])+|(Canada|Sino|Korean|EU|Japan|non)-U\.S|U\.S\.-(U\.K|U\.S\.S\.R)",
    ),
    ("HTHING", r"[A-Za-z0-9][A-Za-z0-9.,\u00AD]*(-([A-Za-z0-9\u00AD]+|{ACRO2}\.))+"),
    ("REDAUX", r"{APOS}([msdMSD]|re|ve|ll)"),
    ("SWORD", r"[A-Za-z\u00AD]*[A-MO-Za-mo-z](\u00AD)*"),
    ("SREDAUX", r"n{APOSETCETERA}t"),
    (
        "APOWORD",
        r"{APOS}n{APOS}?|[lLdDjJ]{APOS}|Dunkin{APOS}|somethin{APOS}|ol{APOS}|{APOS}em|[A-HJ-XZn]{APOSETCETERA}[:letter:]{2}[:letter:]*|{APOS}[2-9]0s|{APOS}till?|[:letter:][:letter:]*[aeiouyAEIOUY]{APOSETCETERA}[aeiouA-Z][:letter:]*|{APOS}cause|cont'd\.?|'twas|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l|O{APOSETCETERA}o",
    ),
    ("APOWORD2", r"y{APOS}"),
    ("FULLURL", r#"https?:\/\/[^ \t\n\f\r\"<>|(){}]+[^ \t\n\f\r\"<>|.!?(){},-]"#),
    (
        "LIKELYURL",
        r#"((www\.([^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})|(([^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+(com|net|org|edu)))(\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?"#,
    ),
    (
        "EMAIL",
        r#"(&lt;|<)?[a-zA-Z0-9][^ \t\n\f\r\"<>|()\u00A0{}]*@([^ \t\n\f\r\"<>|(){}.\u00A0]+\.)*([^ \t\n\f\r\"<>|(){}.\u00A0]+)(&gt;|>)?"#,
    ),
    ("TWITTER_NAME", r"@[a-zA-Z_][a-zA-Z_0-9]*"),
    ("TWITTER_CATEGORY", r"#{LETTER}+"),
    ("TWITTER", r"{TWITTER_NAME}|{TWITTER_CATEGORY}"),
    ("ABMONTH", r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"),
    ("ABDAYS", r"Mon|Tue|Tues|Wed|Thu|Thurs|Fri"),
    (
        "ABSTATE",
        r"Ala|Ariz|[A]z|[A]rk|Calif|Colo|Conn|Ct|Dak|[D]el|Fla|Ga|[I]ll|Ind|Kans?|Ky|[L]a|[M]ass|Md|Mich|Minn|[M]iss|Mo|Mont|Neb|Nev|Okla|[O]re|[P]a|Penn|Tenn|[T]ex|Va|Vt|[W]ash|Wisc?|Wyo",
    ),
    ("ABCOMP", r"Inc|Cos?|Corp|Pp?t[ye]s?|Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys"),
    ("ABNUM", r"tel|est|ext|sq"),
    ("ABPTIT", r"Jr|Sr|Bros|(Ed|Ph)\.D|Blvd|Rd|Esq"),
    ("ABBREV1", r"({ABMONTH}|{ABDAYS}|{ABSTATE}|{ABCOMP}|{ABNUM}|{ABPTIT}|etc|al|seq|Bldg)\."),
    (
        "ABTITLE",
        r"Mr|Mrs|Ms|[M]iss|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|Cpl|Pvt|Capt|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det|Mt|Ft|Adj|Adv|Asst|Assoc|Ens|Insp|Mlle|Mme|Msgr|Sfc",
    ),
    ("ABCOMP2", r"Invt|Elec|Natl|M[ft]g|Dept"),
    ("ABBREV4", r"{ABTITLE}|vs|Alex|Wm|Jos|Cie|a\.k\.a|cf|TREAS|Ph|{ACRO}|{ABCOMP2}"),
    ("ABBREV2", r"{ABBREV4}\."),
    ("ACRONYM", r"({ACRO})\."),
    ("ABBREV3", r"(ca|figs?|prop|nos?|art|bldg|prop|pp|op)\."),
    (
        "PHONE",
        r"(\([0-9]{2,3}\)[ \u00A0]?|(\+\+?)?([0-9]{2,4}[\- \u00A0])?[0-9]{2,4}[\- \u00A0])[0-9]{3,4}[\- \u00A0]?[0-9]{3,5}|((\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}",
    ),
    ("FAKEDUCKFEET", r"<<|>>"),
    ("LESSTHAN", r"<|&lt;"),
    ("GREATERTHAN", r">|&gt;"),
    ("HYPHENS", r"\-+"),
    ("LDOTS", r"\.{3,5}|(\.[ \u00A0]){2,4}\.|[\u0085\u2026]"),
    ("ATS", r"@+"),
    ("UNDS", r"_+"),
    ("ASTS", r"\*+|(\\\*){1,3}"),
    ("HASHES", r"#+"),
    ("FNMARKS", r"{ATS}|{HASHES}|{UNDS}"),
    ("INSENTP", r"[,;:\u3001]"),
    (
        "QUOTES",
        r"{APOS}|''|[`\u2018\u2019\u201A\u201B\u201C\u201D\u0091\u0092\u0093\u0094\u201E\u201F\u2039\u203A\u00AB\u00BB]{1,2}",
    ),
    ("DBLQUOT", r#"\"|&quot;"#),
    (
        "TBSPEC",
        r"-(RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|pro-|anti-|S(&|&amp;)P-500|S(&|&amp;)Ls|Cap{APOS}n|c{APOS}est",
    ),
    ("TBSPEC2", r"{APOS}[0-9][0-9]"),
    ("SMILEY", r"[<>]?[:;=][\-o\*']?[\(\)DPdpO\\{@\|\[\]]"),
    (
        "ASIANSMILEY",
        r"[\^x=~<>]\.\[\^x=~<>]|[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)|\([\^x=~<>']-[\^x=~<>'`]\)",
    ),
    (
        "MISCSYMBOL",
        r"[+%&~\^|\\¦\u00A7¨\u00A9\u00AC\u00AE¯\u00B0-\u00B3\u00B4-\u00BA\u00D7\u00F7\u0387\u05BE\u05C0\u05C3\u05C6\u05F3\u05F4\u0600-\u0603\u0606-\u060A\u060C\u0614\u061B\u061E\u066A\u066D\u0703-\u070D\u07F6\u07F7\u07F8\u0964\u0965\u0E4F\u1FBD\u2016\u2017\u2020-\u2023\u2030-\u2038\u203B\u203E-\u2042\u2044\u207A-\u207F\u208A-\u208E\u2100-\u214F\u2190-\u21FF\u2200-\u2BFF\u3012\u30FB\uFF01-\uFF0F\uFF1A-\uFF20\uFF3B-\uFF40\uFF5B-\uFF65\uFF65]",
    ),
];

/// What a rule's action does with the matched text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Keep,
    /// `yypushback(n)`: the token loses its last n characters, which are scanned again.
    PushBack(usize),
    /// Spaces become non-breaking spaces (SGML, fractions).
    Nbsp,
    Text(&'static str),
    Amp,
    SoftHyphens,
    QuoteLeft,
    QuoteRight,
    Frac2,
    Currency,
    Acronym,
    /// The abbreviation keeps its period and the period is also scanned again.
    AbbrevPeriod,
    Phone,
    Smiley,
    Hyphens,
    Skip,
    Newline,
}

/// The rules in file order: pattern, trailing context, action.
const RULES: &[(&str, Option<&str>, Act)] = &[
    (r"c[+][+]", None, Act::Keep),
    (r"(c|f)#", None, Act::Keep),
    (r"cannot", None, Act::PushBack(3)),
    (r"'twas", None, Act::PushBack(3)),
    (r"'tis", None, Act::PushBack(2)),
    (r"gonna|gotta|lemme|gimme|wanna", None, Act::PushBack(2)),
    (r"{SGML}", None, Act::Nbsp),
    (r"{SPMDASH}", None, Act::Text("--")),
    (r"{SPAMP}", None, Act::Amp),
    (r"{SPPUNC}", None, Act::Keep),
    (r"{WORD}", Some(r"{REDAUX}"), Act::SoftHyphens),
    (r"{SWORD}", Some(r"{SREDAUX}"), Act::SoftHyphens),
    (r"{WORD}", None, Act::SoftHyphens),
    (r"{APOWORD}", None, Act::Keep),
    (r"{APOWORD2}", Some(r"[:letter:]"), Act::Keep),
    (r"{FULLURL}", None, Act::Keep),
    (r"{LIKELYURL}", None, Act::Keep),
    (r"{EMAIL}", None, Act::Keep),
    (r"{TWITTER}", None, Act::Keep),
    (r"{REDAUX}", Some(r"[^A-Za-z]"), Act::QuoteRight),
    (r"{SREDAUX}", Some(r"[^A-Za-z]"), Act::QuoteRight),
    (r"{DATE}", None, Act::Keep),
    (r"{NUMBER}", None, Act::SoftHyphens),
    (r"{SUBSUPNUM}", None, Act::Keep),
    (r"{FRAC}", None, Act::Nbsp),
    (r"{FRAC2}", None, Act::Frac2),
    (r"{TBSPEC}", None, Act::Amp),
    (r"{THING3}", None, Act::Keep),
    (r"{DOLSIGN}", None, Act::Keep),
    (r"{DOLSIGN2}", None, Act::Currency),
    (
        r"{ACRONYM}",
        Some(
            r"({SPACENLS})([A]bout|[A]ccording|[A]dditionally|[A]fter|[A]n|[A]|[A]s|[A]t|[B]ut|[E]arlier|[H]e|[H]er|[H]ere|[H]owever|[I]f|[I]n|[I]t|[L]ast|[M]any|[M]ore|[M]r\.|[M]s\.|[N]ow|[O]nce|[O]ne|[O]ther|[O]ur|[S]he|[S]ince|[S]o|[S]ome|[S]uch|[T]hat|[T]he|[T]heir|[T]hen|[T]here|[T]hese|[T]hey|[T]his|[W]e|[W]hen|[W]hile|[W]hat|[Y]et|[Y]ou|{SGML}){SPACENL}",
        ),
        Act::Acronym,
    ),
    (r"{ABBREV3}", Some(r"{SPACENL}?[:digit:]"), Act::Keep),
    (r"(pt[eyEY]|co)\.", Some(r"{SPACE}(ltd|lim)"), Act::Keep),
    (r"{ABBREV1}", Some(r"{SENTEND}"), Act::AbbrevPeriod),
    (r"{ABBREV1}", Some(r"[^][^]"), Act::Keep),
    (r"{ABBREV1}", None, Act::AbbrevPeriod),
    (r"{ABBREV2}", None, Act::Keep),
    (r"{ABBREV4}", Some(r"{SPACE}"), Act::Keep),
    (r"{ACRO}", Some(r"{SPACENL}"), Act::Keep),
    (r"{TBSPEC2}", Some(r"{SPACENL}"), Act::Keep),
    (r"{FILENAME}", Some(r"({SPACENL}|[.?!,])"), Act::Keep),
    (r"{WORD}\.", Some(r"{INSENTP}"), Act::SoftHyphens),
    (r"{PHONE}", None, Act::Phone),
    (r"{DBLQUOT}", Some(r"[A-Za-z0-9$]"), Act::QuoteLeft),
    (r"{DBLQUOT}", None, Act::QuoteRight),
    (r"\x7f", None, Act::Skip),
    (r"{LESSTHAN}", None, Act::Text("<")),
    (r"{GREATERTHAN}", None, Act::Text(">")),
    (r"{SMILEY}", Some(r"[^A-Za-z0-9]"), Act::Smiley),
    (r"{ASIANSMILEY}", None, Act::Smiley),
    (r"\{", None, Act::Text("-LCB-")),
    (r"\}", None, Act::Text("-RCB-")),
    (r"\[", None, Act::Text("-LSB-")),
    (r"\]", None, Act::Text("-RSB-")),
    (r"\(", None, Act::Text("-LRB-")),
    (r"\)", None, Act::Text("-RRB-")),
    (r"{HYPHENS}", None, Act::Hyphens),
    (r"{LDOTS}", None, Act::Text("...")),
    (r"{FNMARKS}", None, Act::Keep),
    (r"{ASTS}", None, Act::Keep),
    (r"{INSENTP}", None, Act::Keep),
    (r"[?!]+", None, Act::Keep),
    (r"[.¡¿\u037E\u0589\u061F\u06D4\u0700-\u0702\u07FA\u3002]", None, Act::Keep),
    (r"=", None, Act::Keep),
    (r"\/", None, Act::Keep),
    (r"{HTHING}\.", Some(r"{INSENTP}"), Act::SoftHyphens),
    (r"{HTHING}", None, Act::SoftHyphens),
    (r"{THING}\.", Some(r"{INSENTP}"), Act::Keep),
    (r"{THING}", None, Act::Keep),
    (r"{THINGA}\.", Some(r"{INSENTP}"), Act::Amp),
    (r"{THINGA}", None, Act::Amp),
    (r"'", Some(r"[A-Za-z][^ \t\n\r\u00A0]"), Act::QuoteLeft),
    (r"{REDAUX}", None, Act::QuoteRight),
    (r"{SREDAUX}", None, Act::QuoteRight),
    (r"{QUOTES}", None, Act::QuoteRight),
    (r"{FAKEDUCKFEET}", None, Act::Keep),
    (r"{MISCSYMBOL}", None, Act::Keep),
    (r"\0|{SPACES}|[\u200B\u200E-\u200F\uFEFF]", None, Act::Skip),
    (r"{NEWLINE}", None, Act::Newline),
    (r"&nbsp;", None, Act::Skip),
    // Untokenizable characters: deleted (the default `untokenizable=firstDelete`).
    (r".", None, Act::Skip),
];

/// Translates JFlex regex syntax (with `%caseless`) into `regex` syntax: macros expand,
/// letters outside character classes match either case (JFlex's caseless mode does not
/// reach inside classes), `\uXXXX` escapes and predefined classes are rewritten.
fn translate(src: &str, macros: &HashMap<&str, String>) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let rest: String = chars[i..].iter().take(14).collect();
        if let Some((pat, rx)) =
            [("[:letter:]", r"\p{L}"), ("[:digit:]", r"\p{Nd}"), ("[:uppercase:]", r"\p{Lu}")]
                .iter()
                .find(|(p, _)| rest.starts_with(p))
        {
            out.push_str(rx);
            i += pat.chars().count();
            continue;
        }
        match c {
            '{' if chars.get(i + 1).is_some_and(|c| c.is_ascii_uppercase()) => {
                let end = i + chars[i..].iter().position(|&c| c == '}').expect("macro closes");
                let name: String = chars[i + 1..end].iter().collect();
                let body = macros.get(name.as_str()).unwrap_or_else(|| panic!("macro {name}"));
                out.push_str("(?:");
                out.push_str(body);
                out.push(')');
                i = end + 1;
            }
            '[' if chars.get(i + 1) == Some(&'^') && chars.get(i + 2) == Some(&']') => {
                out.push_str("(?s:.)");
                i += 3;
            }
            '[' => {
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                while chars[i] != ']' {
                    i = escape_atom(&chars, i, &mut out, true);
                }
                out.push(']');
                i += 1;
            }
            '.' => {
                out.push_str(r"[^\n]");
                i += 1;
            }
            c if c.is_ascii_alphabetic() => {
                out.push('[');
                out.push(c.to_ascii_lowercase());
                out.push(c.to_ascii_uppercase());
                out.push(']');
                i += 1;
            }
            _ => i = escape_atom(&chars, i, &mut out, false),
        }
    }
    out
}

/// Copies one (possibly escaped) character, in or outside a class.
fn escape_atom(chars: &[char], i: usize, out: &mut String, in_class: bool) -> usize {
    let c = chars[i];
    if c == '\\' {
        let n = chars[i + 1];
        match n {
            'u' => {
                let hex: String = chars[i + 2..i + 6].iter().collect();
                out.push_str(&format!("\\x{{{hex}}}"));
                return i + 6;
            }
            '0' => {
                out.push_str(r"\x00");
                return i + 2;
            }
            'x' => {
                let hex: String = chars[i + 2..i + 4].iter().collect();
                out.push_str(&format!("\\x{{{hex}}}"));
                return i + 4;
            }
            't' | 'n' | 'r' | 'f' => {
                out.push('\\');
                out.push(n);
                return i + 2;
            }
            _ => {
                out.push_str(&regex::escape(&n.to_string()));
                return i + 2;
            }
        }
    }
    if in_class && matches!(c, '&' | '~' | '[' | '-' | '^') {
        // `-` as a range operator is copied as is; only a literal leading/trailing one needs care.
        if c == '-' && i > 0 && chars[i - 1] != '[' && chars[i + 1] != ']' {
            out.push('-');
        } else {
            out.push('\\');
            out.push(c);
        }
        return i + 1;
    }
    if !in_class && c == '#' {
        out.push_str(r"\#");
        return i + 1;
    }
    out.push(c);
    i + 1
}

struct Rule {
    act: Act,
    /// For `a/b` rules: `^a$` and `^b$`, to find where the token ends.
    split: Option<(Regex, Regex)>,
}

struct Lexer {
    dfa: DFA,
    rules: Vec<Rule>,
    caches: Mutex<Vec<Cache>>,
}

static LEXER: LazyLock<Lexer> = LazyLock::new(Lexer::new);

impl Lexer {
    fn new() -> Lexer {
        let mut macros: HashMap<&str, String> = HashMap::new();
        for (name, body) in MACROS {
            let t = translate(body, &macros);
            macros.insert(name, t);
        }
        let mut patterns = Vec::new();
        let mut rules = Vec::new();
        for (pat, look, act) in RULES {
            let a = translate(pat, &macros);
            match look {
                None => {
                    patterns.push(a);
                    rules.push(Rule { act: *act, split: None });
                }
                Some(look) => {
                    let b = translate(look, &macros);
                    patterns.push(format!("(?:{a})(?:{b})"));
                    let full =
                        |p: &str| Regex::new(&format!("^(?:{p})$")).expect("PTB rule compiles");
                    rules.push(Rule { act: *act, split: Some((full(&a), full(&b))) });
                }
            }
        }
        let dfa = DFA::builder()
            .configure(DFA::config().match_kind(MatchKind::All).cache_capacity(64 << 20))
            .build_many(&patterns)
            .expect("PTB lexer compiles");
        Lexer { dfa, rules, caches: Mutex::new(Vec::new()) }
    }

    /// The longest match at `at` (rule index, end), ties to the earlier rule.
    fn longest(&self, cache: &mut Cache, hay: &str, at: usize) -> Option<(usize, usize)> {
        let bytes = hay.as_bytes();
        let input = Input::new(hay).range(at..).anchored(Anchored::Yes);
        let dfa = &self.dfa;
        let mut sid = dfa.start_state_forward(cache, &input).ok()?;
        let mut best = None;
        let min_pattern = |cache: &Cache, sid| {
            (0..dfa.match_len(cache, sid))
                .map(|i| dfa.match_pattern(cache, sid, i).as_usize())
                .min()
        };
        for (pos, &b) in bytes.iter().enumerate().skip(at) {
            sid = dfa.next_state(cache, sid, b).ok()?;
            if sid.is_tagged() {
                if sid.is_match() {
                    // Matches are reported one byte late: this one ends before `pos`.
                    best = min_pattern(cache, sid).map(|r| (r, pos));
                }
                if sid.is_dead() || sid.is_quit() {
                    return best;
                }
            }
        }
        sid = dfa.next_eoi_state(cache, sid).ok()?;
        if sid.is_match() {
            best = min_pattern(cache, sid).map(|r| (r, bytes.len()));
        }
        best
    }

    /// Calls `emit` with each token as the Java lexer returns it (before lower-casing) and
    /// `None` for each line break.
    fn raw_tokens(&self, text: &str, mut emit: impl FnMut(Option<&str>)) {
        // JFlex 1.4 scans UTF-16 code units: characters beyond the BMP are two surrogates,
        // which no rule but the untokenizable one matches. A private-use stand-in behaves the
        // same (deleted, or kept inside URL-like tokens, where the original is put back).
        let astral: Vec<char> = text.chars().filter(|c| (*c as u32) > 0xFFFF).collect();
        let owned;
        let hay: &str = if astral.is_empty() {
            text
        } else {
            owned = text
                .chars()
                .map(|c| if (c as u32) > 0xFFFF { ASTRAL } else { c })
                .collect::<String>();
            &owned
        };
        let mut cache = self
            .caches
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_else(|| self.dfa.create_cache());
        let mut at = 0;
        let mut buf = String::new();
        while at < hay.len() {
            let (rule_idx, end) = self.longest(&mut cache, hay, at).unwrap_or_else(|| {
                (RULES.len() - 1, at + hay[at..].chars().next().map_or(1, char::len_utf8))
            });
            let rule = &self.rules[rule_idx];
            let end = match &rule.split {
                None => end,
                Some((a, b)) => split_point(hay, at, end, a, b),
            };
            let tok = &hay[at..end];
            let mut next = end;
            let restore = |s: &str| -> String {
                if astral.is_empty() || !s.contains(ASTRAL) {
                    return s.to_string();
                }
                let mut k = hay[..at].matches(ASTRAL).count();
                s.chars()
                    .map(|c| {
                        if c == ASTRAL {
                            k += 1;
                            astral[k - 1]
                        } else {
                            c
                        }
                    })
                    .collect()
            };
            buf.clear();
            let out: Option<&str> = match rule.act {
                Act::Keep => Some(tok),
                Act::PushBack(n) => {
                    let cut = tok.char_indices().rev().nth(n - 1).map_or(0, |(i, _)| i);
                    next = at + cut;
                    Some(&tok[..cut])
                }
                Act::Nbsp => {
                    buf.push_str(&tok.replace(' ', "\u{a0}"));
                    Some(&buf)
                }
                Act::Text(t) => Some(t),
                Act::Amp => {
                    buf.push_str(&normalize_amp(tok));
                    Some(&buf)
                }
                Act::SoftHyphens => {
                    buf.push_str(&remove_soft_hyphens(tok));
                    Some(&buf)
                }
                Act::QuoteLeft | Act::QuoteRight => {
                    buf.push_str(&latex_quotes(tok, rule.act == Act::QuoteLeft));
                    Some(&buf)
                }
                Act::Frac2 => {
                    buf.push_str(&normalize_fractions(tok));
                    Some(&buf)
                }
                Act::Currency => {
                    buf.push_str(&normalize_currency(tok));
                    Some(&buf)
                }
                Act::Acronym => {
                    if tok.len() == 2 {
                        next = end - 1;
                        Some(&tok[..1])
                    } else {
                        next = end - 1;
                        Some(tok)
                    }
                }
                Act::AbbrevPeriod => {
                    next = end - 1;
                    Some(tok)
                }
                Act::Phone => {
                    buf.push_str(
                        &tok.replace(' ', "\u{a0}").replace('(', "-LRB-").replace(')', "-RRB-"),
                    );
                    Some(&buf)
                }
                Act::Smiley => {
                    buf.push_str(&tok.replace('(', "-LRB-").replace(')', "-RRB-"));
                    Some(&buf)
                }
                Act::Hyphens => Some(if (3..=4).contains(&tok.len()) { "--" } else { tok }),
                Act::Skip => None,
                Act::Newline => {
                    emit(None);
                    None
                }
            };
            if let Some(t) = out {
                if t.contains(ASTRAL) {
                    emit(Some(&restore(t)));
                } else {
                    emit(Some(t));
                }
            }
            at = next;
        }
        if let Ok(mut v) = self.caches.lock() {
            v.push(cache);
        }
    }
}

/// Stand-in for a supplementary-plane character (see `raw_tokens`).
const ASTRAL: char = '\u{E000}';

/// The end of the token of an `a/b` rule matched over `at..end`: the longest prefix matching
/// `a` whose remainder matches `b` (what JFlex's general lookahead computes).
fn split_point(hay: &str, at: usize, end: usize, a: &Regex, b: &Regex) -> usize {
    let seg = &hay[at..end];
    for (i, _) in seg.char_indices().rev() {
        if i > 0 && b.is_match(&seg[i..]) && a.is_match(&seg[..i]) {
            return at + i;
        }
    }
    end
}

fn normalize_amp(s: &str) -> String {
    static AMP: LazyLock<Regex> = LazyLock::new(|| Regex::new("(?i)&amp;").unwrap());
    AMP.replace_all(s, "&").into_owned()
}

fn remove_soft_hyphens(s: &str) -> String {
    if !s.contains('\u{ad}') {
        return s.to_string();
    }
    let out: String = s.chars().filter(|&c| c != '\u{ad}').collect();
    if out.is_empty() {
        "-".to_string()
    } else {
        out
    }
}

fn latex_quotes(s: &str, probably_left: bool) -> String {
    let (single, double) = if probably_left { ("`", "``") } else { ("'", "''") };
    let s = s.replace("&apos;", single).replace('\'', single);
    let s = s.replace('"', double).replace("&quot;", double);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{91}' | '\u{2018}' | '\u{201B}' | '\u{2039}' => out.push('`'),
            '\u{92}' | '\u{2019}' | '\u{203A}' => out.push('\''),
            '\u{93}' | '\u{201C}' | '\u{AB}' => out.push_str("``"),
            '\u{94}' | '\u{201D}' | '\u{BB}' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out
}

fn normalize_fractions(s: &str) -> String {
    s.replace('\u{BC}', "1/4")
        .replace('\u{BD}', "1/2")
        .replace('\u{BE}', "3/4")
        .replace('\u{2153}', "1/3")
        .replace('\u{2154}', "2/3")
}

fn normalize_currency(s: &str) -> String {
    s.replace('\u{A2}', "cents")
        .replace('\u{A3}', "#")
        .replace(['\u{80}', '\u{A4}', '\u{20A0}', '\u{20AC}'], "$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Golden {
        text: String,
        java: String,
        tokens: String,
    }

    fn corpus() -> Vec<Golden> {
        let path =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/metrics/ptb_corpus.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// Every caption of the golden corpus tokenizes exactly as the Java tokenizer did.
    #[test]
    fn golden_corpus_matches_java() {
        let rows = corpus();
        assert!(rows.len() >= 1000);
        let mut bad = Vec::new();
        for r in &rows {
            let raw = ptb_tokenize_raw(&r.text);
            let got = ptb_tokenize(&r.text);
            if raw != r.java || got != r.tokens {
                bad.push(format!("{:?}\n   java {:?}\n  vista {:?}", r.text, r.java, raw));
            }
        }
        assert!(bad.is_empty(), "{} of {} differ:\n{}", bad.len(), rows.len(), bad.join("\n"));
    }

    #[test]
    fn documented_behaviours() {
        assert_eq!(ptb_tokenize("A dog (brown)."), "a dog -lrb- brown -rrb-");
        assert_eq!(ptb_tokenize("I can't, won't."), "i ca n't wo n't");
        assert_eq!(ptb_tokenize("line\rbreak"), "line break");
    }
}

//! Python tokenizer: names, numbers, strings, operators and the NEWLINE / INDENT / DEDENT
//! tokens that give Python its block structure, in one pass over the bytes.
//!
//! The audit needs definitions, imports and token streams, never an expression tree,
//! so tokens are enough; this pass is several times faster than a full parse. It is
//! lenient where a parser would be strict (an expression that makes no sense still
//! tokenizes) and strict where structure depends on it: an unterminated string,
//! unbalanced brackets or an inconsistent dedent fail the file.

/// What a token is; keywords are `Name`s, told apart by their text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TokenKind {
    Name,
    Number,
    /// A whole string literal, f-string replacement fields included.
    String,
    Op,
    /// End of a logical line (never inside brackets, never for a blank line).
    Newline,
    Indent,
    Dedent,
}

/// One token: byte span and rows (0-based) of its first and last byte.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tok {
    pub kind: TokenKind,
    pub start: u32,
    pub end: u32,
    pub row: u32,
    pub end_row: u32,
    /// An operator's `pack`ed bytes (0 for other tokens).
    pub op: u32,
}

impl Tok {
    pub fn is_code(&self) -> bool {
        !matches!(
            self.kind,
            TokenKind::Newline | TokenKind::Indent | TokenKind::Dedent
        )
    }
}

/// Where tokenizing gave up (0-based row).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub row: u32,
}

/// An operator's bytes packed into one number (at most three bytes), which
/// also serves as its token id: distinct per operator and never 0.
pub(super) const fn pack(op: &[u8]) -> u32 {
    let mut packed = 0u32;
    let mut i = 0;
    while i < op.len() {
        packed |= (op[i] as u32) << (8 * i);
        i += 1;
    }
    packed
}

/// The length of the operator or delimiter `rest` starts with.
fn operator_len(rest: &[u8]) -> Option<usize> {
    let at = |i: usize| rest.get(i).copied().unwrap_or(0);
    let (first, second) = (at(0), at(1));
    let len = match first {
        b'(' | b')' | b'[' | b']' | b'{' | b'}' | b',' | b';' | b'~' => 1,
        b'.' if second == b'.' && at(2) == b'.' => 3,
        b'.' => 1,
        // `*`, `**`, `*=`, `**=` and the same for `/`, `<`, `>`.
        b'*' | b'/' | b'<' | b'>' if second == first => 2 + usize::from(at(2) == b'='),
        b'-' if second == b'>' => 2,
        b'*' | b'/' | b'<' | b'>' | b'-' | b'+' | b'%' | b'&' | b'|' | b'^' | b'@' | b'='
        | b':' => 1 + usize::from(second == b'='),
        b'!' if second == b'=' => 2,
        _ => return None,
    };
    Some(len)
}

/// Tokenizes `src` into `out` (cleared first).
pub(super) fn tokenize(src: &[u8], out: &mut Vec<Tok>) -> Result<(), SyntaxError> {
    out.clear();
    // A UTF-8 byte order mark is no part of the first line.
    let start = if src.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let mut lexer = Lexer {
        src,
        pos: start,
        row: 0,
        brackets: Vec::new(),
        indents: vec![0],
        line_has_tokens: false,
        fields_open: 0,
        out,
    };
    lexer.run()
}

struct Lexer<'s, 'o> {
    src: &'s [u8],
    pos: usize,
    row: u32,
    /// Open brackets with the row each opened on.
    brackets: Vec<(u8, u32)>,
    /// Indentation columns of the open blocks, outermost first.
    indents: Vec<u32>,
    line_has_tokens: bool,
    /// f-string replacement fields open around the current position.
    fields_open: u32,
    out: &'o mut Vec<Tok>,
}

/// f-strings nested deeper than this fail the file, as CPython refuses them
/// (at about 150), before the recursion that reads them exhausts a stack.
const MAX_NESTED_FIELDS: u32 = 200;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// What a string's prefix (`rb`, `f`, `Tr`, ...) changes in how it is read.
#[derive(Clone, Copy, Default)]
struct Prefix {
    /// f- and t-strings: `{…}` are replacement fields.
    formatted: bool,
    /// Backslashes are literal (yet still keep a quote from closing).
    raw: bool,
}

impl Prefix {
    /// The prefix `name` is, when a quote follows it.
    fn of(name: &[u8]) -> Option<Prefix> {
        let letters = name.iter().map(|b| b.to_ascii_lowercase());
        let valid = name.len() <= 2 && letters.clone().all(|b| b"rubft".contains(&b));
        valid.then(|| Prefix {
            formatted: letters.clone().any(|b| b == b'f' || b == b't'),
            raw: letters.clone().any(|b| b == b'r'),
        })
    }
}

impl Lexer<'_, '_> {
    fn peek(&self, ahead: usize) -> u8 {
        self.src.get(self.pos + ahead).copied().unwrap_or(0)
    }

    fn error(&self) -> SyntaxError {
        SyntaxError { row: self.row }
    }

    fn emit(&mut self, kind: TokenKind, start: usize, row: u32) {
        self.emit_op(kind, start, row, 0);
    }

    fn emit_op(&mut self, kind: TokenKind, start: usize, row: u32, op: u32) {
        self.line_has_tokens |= kind != TokenKind::Indent && kind != TokenKind::Dedent;
        self.out.push(Tok {
            kind,
            start: start as u32,
            end: self.pos as u32,
            row,
            end_row: self.row,
            op,
        });
    }

    fn run(&mut self) -> Result<(), SyntaxError> {
        let mut at_line_start = true;
        while self.pos < self.src.len() {
            if at_line_start && !self.indentation()? {
                continue;
            }
            at_line_start = self.token()?;
        }
        if let Some(&(_, row)) = self.brackets.last() {
            return Err(SyntaxError { row });
        }
        self.end_line(self.pos);
        while self.indents.len() > 1 {
            self.indents.pop();
            self.emit(TokenKind::Dedent, self.pos, self.row);
        }
        Ok(())
    }

    /// Measures a line's indentation and emits INDENT / DEDENT; false for a
    /// blank or comment-only line (consumed whole).
    fn indentation(&mut self) -> Result<bool, SyntaxError> {
        let mut column = 0u32;
        loop {
            match self.peek(0) {
                b' ' => column += 1,
                b'\t' => column = (column / 8 + 1) * 8,
                b'\x0c' => column = 0,
                // A line continued before its first token: CPython takes the
                // indentation of the line it continues on.
                b'\\' if matches!(self.peek(1), b'\n' | b'\r') => {
                    self.pos += 1;
                    self.newline_bytes();
                    column = 0;
                    continue;
                }
                _ => break,
            }
            self.pos += 1;
        }
        if self.pos >= self.src.len() {
            return Ok(false);
        }
        if matches!(self.peek(0), b'#' | b'\n' | b'\r') {
            self.skip_comment();
            self.newline_bytes();
            return Ok(false);
        }
        let top = self.indents.last().copied().unwrap_or(0);
        if column > top {
            self.indents.push(column);
            self.emit(TokenKind::Indent, self.pos, self.row);
        }
        while column < self.indents.last().copied().unwrap_or(0) {
            self.indents.pop();
            self.emit(TokenKind::Dedent, self.pos, self.row);
        }
        if column != self.indents.last().copied().unwrap_or(0) {
            return Err(self.error());
        }
        Ok(true)
    }

    fn skip_comment(&mut self) {
        if self.peek(0) == b'#' {
            while !matches!(self.peek(0), b'\n' | b'\r') && self.pos < self.src.len() {
                self.pos += 1;
            }
        }
    }

    /// Consumes one line break (`\n`, `\r\n` or `\r`) if there is one.
    fn newline_bytes(&mut self) -> bool {
        let width = match (self.peek(0), self.peek(1)) {
            (b'\r', b'\n') => 2,
            (b'\n' | b'\r', _) => 1,
            _ => return false,
        };
        self.pos += width;
        self.row += 1;
        true
    }

    /// Ends the logical line at `at` with a NEWLINE when it had tokens.
    fn end_line(&mut self, at: usize) {
        if self.line_has_tokens {
            let pos = std::mem::replace(&mut self.pos, at);
            self.emit(TokenKind::Newline, at, self.row);
            self.pos = pos;
            self.line_has_tokens = false;
        }
    }

    /// Lexes one token (or skips blanks, a comment, a continuation); true
    /// when a logical line ended and the next one starts.
    fn token(&mut self) -> Result<bool, SyntaxError> {
        let (start, row) = (self.pos, self.row);
        match self.peek(0) {
            b' ' | b'\t' | b'\x0c' => self.pos += 1,
            b'#' => self.skip_comment(),
            b'\n' | b'\r' => {
                let logical_end = self.brackets.is_empty();
                if logical_end {
                    self.end_line(start);
                }
                self.newline_bytes();
                return Ok(logical_end);
            }
            b'\\' => {
                self.pos += 1;
                if !self.newline_bytes() {
                    return Err(self.error());
                }
            }
            b'"' | b'\'' => self.string(start, Prefix::default())?,
            b'.' if self.peek(1).is_ascii_digit() => self.number(start)?,
            b if b.is_ascii_digit() => self.number(start)?,
            b if is_name_byte(b) => self.name(start)?,
            _ => self.operator(start, row)?,
        }
        Ok(false)
    }

    fn name(&mut self, start: usize) -> Result<(), SyntaxError> {
        while is_name_byte(self.peek(0)) {
            self.pos += 1;
        }
        let prefix = Prefix::of(&self.src[start..self.pos]);
        if let Some(prefix) = prefix.filter(|_| matches!(self.peek(0), b'"' | b'\'')) {
            return self.string(start, prefix);
        }
        self.emit(TokenKind::Name, start, self.row);
        Ok(())
    }

    /// A number literal; a name glued to it (`1st`) is a syntax error, as
    /// in Python, except a keyword (`1if x else 2` still runs).
    fn number(&mut self, start: usize) -> Result<(), SyntaxError> {
        let row = self.row;
        let radix = if self.peek(0) == b'0' {
            self.peek(1) | 0x20
        } else {
            0
        };
        if matches!(radix, b'x' | b'o' | b'b') {
            self.pos += 2;
            let digit: fn(u8) -> bool = match radix {
                b'x' => |b| b.is_ascii_hexdigit(),
                b'o' => |b| (b'0'..=b'7').contains(&b),
                _ => |b| b == b'0' || b == b'1',
            };
            self.skip_while(|b| digit(b) || b == b'_');
        } else {
            self.skip_decimal();
        }
        if is_name_byte(self.peek(0)) {
            let glued = self.pos;
            self.skip_while(is_name_byte);
            let word = &self.src[glued..self.pos];
            self.pos = glued;
            let keywords: [&[u8]; 8] =
                [b"and", b"or", b"if", b"else", b"in", b"is", b"not", b"for"];
            if !keywords.contains(&word) {
                return Err(self.error());
            }
        }
        self.emit(TokenKind::Number, start, row);
        Ok(())
    }

    /// `12_3.45e-6j` and its shorter forms (`.5`, `1.`, `3j`).
    fn skip_decimal(&mut self) {
        self.skip_while(|b| b.is_ascii_digit() || b == b'_');
        if self.peek(0) == b'.' {
            self.pos += 1;
            self.skip_while(|b| b.is_ascii_digit() || b == b'_');
        }
        let sign = usize::from(matches!(self.peek(1), b'+' | b'-'));
        if matches!(self.peek(0), b'e' | b'E') && self.peek(1 + sign).is_ascii_digit() {
            self.pos += 1 + sign;
            self.skip_while(|b| b.is_ascii_digit() || b == b'_');
        }
        if matches!(self.peek(0), b'j' | b'J') {
            self.pos += 1;
        }
    }

    fn skip_while(&mut self, keep: impl Fn(u8) -> bool) {
        while self.pos < self.src.len() && keep(self.src[self.pos]) {
            self.pos += 1;
        }
    }

    /// A string literal whose opening quote is at `self.pos` (after any prefix).
    fn string(&mut self, start: usize, prefix: Prefix) -> Result<(), SyntaxError> {
        let row = self.row;
        self.skip_string(prefix).map_err(|_| SyntaxError { row })?;
        self.emit(TokenKind::String, start, row);
        Ok(())
    }

    /// Moves past a string literal; f-strings' replacement fields may hold
    /// strings of their own, with the same quotes since Python 3.12.
    fn skip_string(&mut self, prefix: Prefix) -> Result<(), SyntaxError> {
        let quote = self.peek(0);
        let triple = self.peek(1) == quote && self.peek(2) == quote;
        self.pos += if triple { 3 } else { 1 };
        loop {
            match self.peek(0) {
                _ if self.pos >= self.src.len() => return Err(self.error()),
                b'\\' => self.skip_escape(prefix),
                b'\n' | b'\r' if !triple => return Err(self.error()),
                b'\n' | b'\r' => {
                    self.newline_bytes();
                }
                q if q == quote => {
                    if !triple {
                        self.pos += 1;
                        return Ok(());
                    }
                    if self.peek(1) == quote && self.peek(2) == quote {
                        self.pos += 3;
                        return Ok(());
                    }
                    self.pos += 1;
                }
                b'{' if prefix.formatted && self.peek(1) == b'{' => self.pos += 2,
                b'{' if prefix.formatted => {
                    self.pos += 1;
                    self.skip_replacement_field()?;
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Moves past a backslash and what it escapes. In an f-string `\{` still
    /// opens a field, and `\N{NAME}` (not raw) is one escape, not a field.
    fn skip_escape(&mut self, prefix: Prefix) {
        self.pos += 1;
        match self.peek(0) {
            b'{' if prefix.formatted => {}
            b'N' if prefix.formatted && !prefix.raw && self.peek(1) == b'{' => {
                self.skip_while(|b| b != b'}' && b != b'\n');
                self.pos += 1;
            }
            _ => {
                if !self.newline_bytes() {
                    self.pos += 1;
                }
            }
        }
    }

    /// Moves past `expr[!conv][:spec]}` of an f-string (after its `{`).
    fn skip_replacement_field(&mut self) -> Result<(), SyntaxError> {
        if self.fields_open >= MAX_NESTED_FIELDS {
            return Err(self.error());
        }
        self.fields_open += 1;
        let skipped = self.skip_field_body();
        self.fields_open -= 1;
        skipped
    }

    fn skip_field_body(&mut self) -> Result<(), SyntaxError> {
        let mut depth = 0u32;
        loop {
            match self.peek(0) {
                _ if self.pos >= self.src.len() => return Err(self.error()),
                b'"' | b'\'' => self.skip_string(Prefix::default())?,
                b if is_name_byte(b) && !b.is_ascii_digit() => self.skip_name_or_string()?,
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    self.pos += 1;
                }
                b')' | b']' => {
                    depth = depth.saturating_sub(1);
                    self.pos += 1;
                }
                b'}' if depth > 0 => {
                    depth -= 1;
                    self.pos += 1;
                }
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                b':' if depth == 0 => {
                    self.pos += 1;
                    return self.skip_format_spec();
                }
                // Python 3.12: a multi-line field may hold comments.
                b'#' => self.skip_comment(),
                b'\n' | b'\r' => {
                    self.newline_bytes();
                }
                _ => self.pos += 1,
            }
        }
    }

    /// A name inside a replacement field, or a prefixed string (`f"{rb'x'}"`).
    fn skip_name_or_string(&mut self) -> Result<(), SyntaxError> {
        let start = self.pos;
        while is_name_byte(self.peek(0)) {
            self.pos += 1;
        }
        let prefix = Prefix::of(&self.src[start..self.pos]);
        if let Some(prefix) = prefix.filter(|_| matches!(self.peek(0), b'"' | b'\'')) {
            self.skip_string(prefix)?;
        }
        Ok(())
    }

    /// The format spec after `:` up to the field's `}`; `{…}` nest inside it.
    fn skip_format_spec(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.peek(0) {
                _ if self.pos >= self.src.len() => return Err(self.error()),
                b'{' => {
                    self.pos += 1;
                    self.skip_replacement_field()?;
                }
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\n' | b'\r' => {
                    self.newline_bytes();
                }
                _ => self.pos += 1,
            }
        }
    }

    fn operator(&mut self, start: usize, row: u32) -> Result<(), SyntaxError> {
        let len = operator_len(&self.src[start..]).ok_or_else(|| self.error())?;
        self.pos += len;
        let op = &self.src[start..self.pos];
        match op[0] {
            open @ (b'(' | b'[' | b'{') => self.brackets.push((open, row)),
            close @ (b')' | b']' | b'}') => {
                let opened = self.brackets.pop().map(|(b, _)| b);
                let expected = match close {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if opened != Some(expected) {
                    return Err(SyntaxError { row });
                }
            }
            _ => {}
        }
        let packed = pack(op);
        self.emit_op(TokenKind::Op, start, row, packed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokenKind, String)> {
        let mut out = Vec::new();
        tokenize(src.as_bytes(), &mut out).expect("tokenizes");
        out.iter()
            .map(|t| (t.kind, src[t.start as usize..t.end as usize].to_string()))
            .collect()
    }

    fn row_of_error(src: &str) -> u32 {
        let mut out = Vec::new();
        tokenize(src.as_bytes(), &mut out).expect_err("fails").row
    }

    #[test]
    fn blocks_become_indent_and_dedent() {
        let toks = kinds("def f(x):\n    # note\n\n    return x\ny = 1\n");
        let shape: Vec<TokenKind> = toks.iter().map(|t| t.0).collect();
        use TokenKind::*;
        assert_eq!(
            shape,
            [
                Name, Name, Op, Name, Op, Op, Newline, Indent, Name, Name, Newline, Dedent, Name,
                Op, Number, Newline
            ]
        );
    }

    #[test]
    fn brackets_and_continuations_join_lines() {
        let toks = kinds("x = (1,\n     2)\ny = 1 + \\\n    2\n");
        let newlines = toks.iter().filter(|t| t.0 == TokenKind::Newline).count();
        assert_eq!(newlines, 2);
        assert!(toks.iter().all(|t| t.0 != TokenKind::Indent));
    }

    #[test]
    fn strings_are_one_token_including_fstring_fields() {
        let src = "a = f\"{x['k']!r:>{width}} {{lit}}\" + rb'\\'' + '''one\ntwo'''\n";
        let strings: Vec<String> = kinds(src)
            .into_iter()
            .filter(|t| t.0 == TokenKind::String)
            .map(|t| t.1)
            .collect();
        assert_eq!(
            strings,
            [
                "f\"{x['k']!r:>{width}} {{lit}}\"",
                "rb'\\''",
                "'''one\ntwo'''"
            ]
        );
    }

    #[test]
    fn python_3_12_fstrings_may_reuse_their_quotes() {
        let toks = kinds("s = f\"{d[\"key\"]}\"\n");
        assert_eq!(
            toks[2],
            (TokenKind::String, "f\"{d[\"key\"]}\"".to_string())
        );
        let commented = "s = f'''\n{ # it's a comment\n3 * 2}'''\n";
        assert_eq!(kinds(commented)[2].0, TokenKind::String);
        for escaped in [r"fr'\{{'", r"f'\{6}'", r"f'\N{DASH} {x}'", r"fr'\N{x}'"] {
            let toks = kinds(&format!("s = {escaped}\n"));
            assert_eq!(
                toks[2],
                (TokenKind::String, escaped.to_string()),
                "{escaped}"
            );
        }
    }

    #[test]
    fn numbers_keep_exponents_and_suffixes() {
        let toks = kinds("x = 1e-5 + 0x1F - .5j + 1_000 + 1.if y else 0o7\n");
        let numbers: Vec<&str> = toks
            .iter()
            .filter(|t| t.0 == TokenKind::Number)
            .map(|t| t.1.as_str())
            .collect();
        assert_eq!(numbers, ["1e-5", "0x1F", ".5j", "1_000", "1.", "0o7"]);
    }

    #[test]
    fn broken_structure_is_a_syntax_error_with_its_row() {
        assert_eq!(row_of_error("def broken(:\n    return (\n"), 1);
        assert_eq!(row_of_error("x = 'open\ny = 2\n"), 0);
        assert_eq!(row_of_error("x = (1]\n"), 0);
        assert_eq!(row_of_error("if x:\n        a\n    b\n"), 2);
        assert_eq!(row_of_error("x = 1 $ 2\n"), 0);
        assert_eq!(row_of_error("s = '''never closed\n\n"), 0);
        assert_eq!(row_of_error("x = 1\n1syntax_error  # NOQA\n"), 1);
    }

    #[test]
    fn crlf_and_a_missing_final_newline_are_fine() {
        let toks = kinds("if x:\r\n    y = 1\r\nz");
        let shape: Vec<TokenKind> = toks.iter().map(|t| t.0).collect();
        use TokenKind::*;
        assert_eq!(
            shape,
            [
                Name, Name, Op, Newline, Indent, Name, Op, Number, Newline, Dedent, Name, Newline
            ]
        );
    }
}

//! `calculator`: evaluates an arithmetic expression (+ - * / % ^, parentheses, decimals).

use async_trait::async_trait;
use cordon_core::{Tool, ToolContext, ToolError};
use serde_json::{Value, json};

const MAX_EXPRESSION_LEN: usize = 256;
const MAX_DEPTH: usize = 32;

pub struct Calculator;

#[async_trait]
impl Tool for Calculator {
    fn name(&self) -> &str {
        "calculator"
    }

    fn description(&self) -> &str {
        "Evaluates an arithmetic expression with + - * / % ^ and parentheses."
    }

    fn parameters_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "expression": { "type": "string", "description": "e.g. (2 + 3) * 4" }
            },
            "required": ["expression"],
            "additionalProperties": false
        })
    }

    async fn call(&self, _cx: &ToolContext, arguments: Value) -> Result<Value, ToolError> {
        let expression = arguments["expression"]
            .as_str()
            .ok_or_else(|| ToolError::InvalidArguments("`expression` must be a string".into()))?;
        let value = evaluate(expression).map_err(ToolError::Failed)?;
        Ok(json!({ "expression": expression, "value": number(value) }))
    }
}

/// Integers stay integers in the result so answers read naturally.
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

/// Evaluates `expression`; the error says what is wrong with it.
pub fn evaluate(expression: &str) -> Result<f64, String> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(format!(
            "expression longer than {MAX_EXPRESSION_LEN} characters"
        ));
    }
    let mut parser = Parser {
        chars: expression.chars().filter(|c| !c.is_whitespace()).collect(),
        pos: 0,
        depth: 0,
    };
    let value = parser.sum()?;
    if parser.pos != parser.chars.len() {
        return Err(format!("unexpected `{}`", parser.chars[parser.pos]));
    }
    if !value.is_finite() {
        return Err("the result is not a finite number (division by zero?)".into());
    }
    Ok(value)
}

/// Recursive descent over: sum := product (('+'|'-') product)*,
/// product := power (('*'|'/'|'%') power)*, power := unary ('^' power)?,
/// unary := '-' unary | atom, atom := number | '(' sum ')'.
struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut value = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            let rhs = self.product()?;
            value = if op == '+' { value + rhs } else { value - rhs };
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut value = self.power()?;
        while let Some(op @ ('*' | '/' | '%')) = self.peek() {
            self.pos += 1;
            let rhs = self.power()?;
            value = match op {
                '*' => value * rhs,
                '/' => value / rhs,
                _ => value % rhs,
            };
        }
        Ok(value)
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.unary()?;
        if self.peek() == Some('^') {
            self.pos += 1;
            let exponent = self.nested(Self::power)?;
            return Ok(base.powf(exponent));
        }
        Ok(base)
    }

    fn unary(&mut self) -> Result<f64, String> {
        if self.peek() == Some('-') {
            self.pos += 1;
            return Ok(-self.nested(Self::unary)?);
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let value = self.nested(Self::sum)?;
                if self.peek() != Some(')') {
                    return Err("missing `)`".into());
                }
                self.pos += 1;
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) => Err(format!("unexpected `{c}`")),
            None => Err("the expression ends too early".into()),
        }
    }

    fn number(&mut self) -> Result<f64, String> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_digit() || c == '.') {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        text.parse()
            .map_err(|_| format!("`{text}` is not a number"))
    }

    /// Guards recursion so a hostile expression cannot overflow the stack.
    fn nested(&mut self, rule: fn(&mut Self) -> Result<f64, String>) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("the expression nests too deeply".into());
        }
        let value = rule(self);
        self.depth -= 1;
        value
    }
}

#[cfg(test)]
mod tests {
    use super::evaluate;

    #[test]
    fn evaluates_with_precedence() {
        assert_eq!(evaluate("2 + 3 * 4"), Ok(14.0));
        assert_eq!(evaluate("(2 + 3) * 4"), Ok(20.0));
        assert_eq!(evaluate("2 ^ 3 ^ 2"), Ok(512.0));
        assert_eq!(evaluate("-3 + 10 % 4"), Ok(-1.0));
        assert_eq!(evaluate("7 / 2"), Ok(3.5));
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        assert!(evaluate("1 / 0").unwrap_err().contains("finite"));
        assert!(evaluate("2 +").unwrap_err().contains("ends too early"));
        assert!(evaluate("(1").unwrap_err().contains("missing"));
        assert!(evaluate("2 x 3").unwrap_err().contains("unexpected"));
        assert!(evaluate(&"(".repeat(100)).unwrap_err().contains("deeply"));
    }
}

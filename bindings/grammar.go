package bindings

// JSONGrammar is a GBNF grammar for one JSON object, for SamplerOptions.Grammar: what
// OpenAI's response_format {"type": "json_object"} promises. Whitespace between tokens is
// bounded so a model cannot stall in an endless run of blanks; numbers follow RFC 8259.
const JSONGrammar = `root ::= obj
val ::= obj | arr | str | num | "true" sp | "false" sp | "null" sp
obj ::= "{" sp ( member ( "," sp member )* )? "}" sp
member ::= str ":" sp val
arr ::= "[" sp ( val ( "," sp val )* )? "]" sp
str ::= "\"" ( [^"\\\x00-\x1F\x7F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] ) )* "\"" sp
num ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )? sp
sp ::= ( [ \n] [ \t]{0,8} )?
`

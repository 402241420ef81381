/**
 * Lines of a docker-compose `.env` file and the value docker compose gives
 * the variable, per Docker's "env file syntax" page. The same table is fed to
 * compose-go itself (the library docker compose parses .env files with) in
 * test/e2e/env-file.e2e.test.ts, so every expected value here is checked
 * against the real program.
 */
export const COMPOSE_LINES: readonly [string, string, string][] = [
  // [file text, variable, value docker compose gives it]
  ['A=plain', 'A', 'plain'],
  ['A="s3cret" # comment', 'A', 's3cret'],
  ["A='s3cret' # comment", 'A', 's3cret'],
  ['A=s3cret # comment', 'A', 's3cret'],
  ['A=s3cret#not-a-comment', 'A', 's3cret#not-a-comment'],
  ['export A=exported', 'A', 'exported'],
  ['A=crlf\r\nB=next\r\n', 'A', 'crlf'],
  ['A="quoted-crlf"\r\n', 'A', 'quoted-crlf'],
  ['A = spaced around  ', 'A', 'spaced around'],
  ['A: yaml-style', 'A', 'yaml-style'],
  ['A=', 'A', ''],
  ['A=""', 'A', ''],
  ['A="a \\"quoted\\" word"', 'A', 'a "quoted" word'],
  ["A='it\\'s'", 'A', "it's"],
  ['A="tab\\there"', 'A', 'tab\there'],
  ["A='no\\tescape'", 'A', 'no\\tescape'],
  ['A="back\\\\slash"', 'A', 'back\\slash'],
  ['A=un\\quoted', 'A', 'un\\quoted'],
  ["A='has # hash'", 'A', 'has # hash'],
  ['A="has # hash"', 'A', 'has # hash'],
  ['A=first\nB=${A}-second', 'B', 'first-second'],
  ['A=first\nB=$A', 'B', 'first'],
  ['A=first\nB="${A}"', 'B', 'first'],
  ["A=first\nB='${A}'", 'B', '${A}'],
  ['A=x$$y', 'A', 'x$y'],
  ['A="\\$literal"', 'A', '$literal'],
  ['A=pa$5word', 'A', 'pa$5word'],
  ['A=ends-with$', 'A', 'ends-with$'],
  ['A=${UNSET_IN_FILE:-fallback}', 'A', 'fallback'],
  ['A=\nB=${A:-empty-fallback}', 'B', 'empty-fallback'],
  ['A=\nB=${A-unset-only}', 'B', ''],
  ['A=set\nB=${A:+alternative}', 'B', 'alternative'],
  ['# a comment line\n\n   # indented comment\nA=after-comments', 'A', 'after-comments'],
  ['\ufeffA=after-bom', 'A', 'after-bom'],
  ['A="first\nsecond"', 'A', 'first\nsecond'],
];

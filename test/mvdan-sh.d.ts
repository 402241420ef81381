/** mvdan/sh's JavaScript build ships no types; the tests use its parser and walker through `any`. */
declare module 'mvdan-sh' {
  export const syntax: any;
}

// CEL for the fake: x-kubernetes-validations rules of CRD schemas and matchConditions of admission
// webhooks, evaluated with cel-js. Only the standard library: Kubernetes' CEL extensions (quantity,
// url, ip, authorizer, ...) are not there, and an expression that uses them fails to evaluate.
import { parse } from '@marcbachmann/cel-js';

type Program = ReturnType<typeof parse>;
const programs = new Map<string, Program | Error>();

/** The compiled expression, or the compile error (cached either way). */
export function compileCel(expression: string): Program | Error {
  let program = programs.get(expression);
  if (!program) {
    try {
      program = parse(expression);
    } catch (err) {
      program = err instanceof Error ? err : new Error(String(err));
    }
    programs.set(expression, program);
  }
  return program;
}

/** JSON as CEL sees it: whole numbers are CEL ints (BigInt in cel-js), so `size(x) > 0` compares like with like. */
export function toCelValue(value: unknown): unknown {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (Array.isArray(value)) return value.map(toCelValue);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toCelValue(v)]));
  return value;
}

/** First line of a cel-js error (its later lines draw the expression with a caret). */
export function celErrorMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

/** Query parsing of the REST list routes, with the real API's 422 rows for bad values. */
import type { ValidationIssue } from './api-body.ts';

/** Collects the 422 rows of one query while its values are read. */
export class QueryReader {
  readonly issues: ValidationIssue[] = [];
  readonly #params: URLSearchParams;

  constructor(params: URLSearchParams) {
    this.#params = params;
  }

  /** An integer in [min, max], `fallback` when absent. */
  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.#params.get(name);
    if (raw === null) return fallback;
    if (!/^-?\d+$/.test(raw.trim())) {
      this.issues.push({ loc: ['query', name], msg: 'Input should be a valid integer, unable to parse string as an integer', type: 'int_parsing' });
      return fallback;
    }
    const value = Number(raw);
    if (value < min) this.issues.push({ loc: ['query', name], msg: `Input should be greater than or equal to ${min}`, type: 'greater_than_equal' });
    else if (value > max) this.issues.push({ loc: ['query', name], msg: `Input should be less than or equal to ${max}`, type: 'less_than_equal' });
    else return value;
    return fallback;
  }

  /** Every value of a repeatable key, each checked against `allowed` when given. */
  list(name: string, allowed?: readonly string[]): string[] {
    const values = this.#params.getAll(name);
    if (allowed) {
      values.forEach((value, i) => {
        if (!allowed.includes(value)) this.issues.push({ loc: ['query', name, i], msg: `Input should be ${allowed.map((a) => `'${a}'`).join(', ')}`, type: 'enum' });
      });
    }
    return values;
  }

  /** The single value of a key (the last one, as FastAPI takes it), checked against `allowed` when given. */
  one(name: string, allowed?: readonly string[]): string | undefined {
    const values = this.#params.getAll(name);
    const value = values.at(-1);
    if (value !== undefined && allowed && !allowed.includes(value)) this.issues.push({ loc: ['query', name], msg: `Input should be ${allowed.map((a) => `'${a}'`).join(', ')}`, type: 'enum' });
    return value;
  }

  /** A date-time as ms since the epoch, undefined when absent or bad (then a 422 row). */
  time(name: string): number | undefined {
    const raw = this.one(name);
    if (raw === undefined) return undefined;
    const ms = /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : Number.NaN;
    if (Number.isNaN(ms)) {
      this.issues.push({ loc: ['query', name], msg: 'Input should be a valid datetime', type: 'datetime_from_date_parsing' });
      return undefined;
    }
    return ms;
  }
}

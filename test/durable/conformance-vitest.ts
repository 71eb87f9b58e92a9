/**
 * What `@durable-streams/server-conformance-tests` gets when it imports
 * `vitest` (vitest.config.ts points it here): this project's vitest, whose
 * runner is the one running, with its suites flattened into case names
 * (`Suite > case`) and only the cases a filter accepts registered (a
 * read-only server cannot run the cases that write;
 * docs/durable-streams.md lists which run and why).
 */
import { test as vitestTest } from 'vitest';

export { expect, vi } from 'vitest';

/** Decides, by the full case name (`Suite > case`), which conformance cases are registered. */
type CaseFilter = (fullName: string) => boolean;
const holder = globalThis as { __durableConformanceFilter?: CaseFilter };

/** Set by the test file before it calls runConformanceTests. */
export function setConformanceFilter(filter: CaseFilter): void {
  holder.__durableConformanceFilter = filter;
}

type AnyFn = (...args: unknown[]) => unknown;
const suites: string[] = [];
const fullName = (name: string) => [...suites, name].join(' > ');

// `test`, and every chained form (`test.concurrent`, `test.skipIf(c)`, `test.each(t)`…), registering a
// named case, under its full name, only when the filter accepts it.
function filtering(fn: AnyFn, owner: unknown): AnyFn {
  return new Proxy(fn, {
    apply(target, thisArg, args: unknown[]) {
      if (typeof args[0] === 'string') {
        const name = fullName(args[0]);
        if (holder.__durableConformanceFilter?.(name) !== true) return undefined;
        args = [name, ...args.slice(1)];
      }
      const out = Reflect.apply(target, owner ?? thisArg, args);
      return typeof out === 'function' ? filtering(out as AnyFn, undefined) : out;
    },
    get(target, prop) {
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? filtering(value as AnyFn, target) : value;
    },
  });
}

/** A suite only names its cases: suites left empty by the filter would be errors in vitest. */
function describeFlat(name: string, body: () => void): void {
  suites.push(name);
  try {
    body();
  } finally {
    suites.pop();
  }
}
describeFlat.runIf = (condition: unknown) => (condition ? describeFlat : () => undefined);
describeFlat.skipIf = (condition: unknown) => (condition ? () => undefined : describeFlat);

const filtered = filtering(vitestTest as unknown as AnyFn, undefined) as unknown as typeof vitestTest;

export { filtered as test, filtered as it, describeFlat as describe };

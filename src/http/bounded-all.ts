/**
 * Runs `task` over `items`, at most `limit` at once, results in order; once a result makes `settles` true, no
 * further task starts (the items not reached are holes at the array's end: some/flatMap skip them; a caller
 * that reads every result meets the settling one first).
 */
export async function boundedAll<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>, settles: (r: R) => boolean = () => false): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let settled = false;
  const worker = async () => {
    while (next < items.length && !settled) {
      const i = next++;
      const r = await task(items[i]!);
      out[i] = r;
      if (settles(r)) settled = true;
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

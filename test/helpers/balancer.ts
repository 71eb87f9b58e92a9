/** The client-side load balancer of the cluster and chaos tests (its own module: no import cycle between them). */

/**
 * A fetch that plays the load balancer: requests go to instance `prefer`, or
 * the next live one (a missing instance is `undefined`/`null` in `instances`).
 */
export function balancerFetch(instances: readonly unknown[], ports: readonly number[], prefer: number): typeof fetch {
  return (input, init) => {
    const live = instances.map((inst, i) => (inst ? i : -1)).filter((i) => i >= 0);
    const slot = live.find((i) => i >= prefer) ?? live[0];
    if (slot === undefined) return Promise.reject(new Error('no live instance'));
    const url = new URL(input instanceof Request ? input.url : String(input));
    url.port = String(ports[slot]);
    return fetch(url, init);
  };
}

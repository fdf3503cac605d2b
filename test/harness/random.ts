// A small seeded generator (mulberry32) for randomized tests, so a failure can be
// replayed from the seed it prints. Kept apart from the harness index, which pulls
// in NATS: unit tests import this file directly.
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

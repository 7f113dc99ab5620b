// Values the tests store.

/** `depth` arrays, each holding the next: `[[[…]]]`. */
export function nestedArrays(depth: number): unknown[] {
  const top: unknown[] = []
  let cur = top
  for (let i = 0; i < depth; i++) {
    const next: unknown[] = []
    cur.push(next)
    cur = next
  }
  return top
}

/** How a collector reports an event: its kind and fields, in the protocol's order. */
export type Emit = (kind: number, ...fields: unknown[]) => void;

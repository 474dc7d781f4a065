/** Injection tokens of the app module. */
export const NODE_RUNTIME = Symbol('NODE_RUNTIME');

import * as path from 'node:path';
import { ConfigError } from '../config';
import type { ReadModel } from './read-model';
import { builtInReadModels } from './index';

/**
 * The read models this projector runs: the built-in ones plus those exported as `readModels` by the module
 * named in PROJECTOR_READ_MODELS (a compiled JS file; see docs/PROJECTOR.md "User read models").
 */
export function loadReadModels(modulePath: string | null): ReadModel[] {
  if (modulePath === null) return builtInReadModels;
  const file = path.resolve(modulePath);
  let mod: { readModels?: unknown };
  try {
    mod = require(file) as { readModels?: unknown };
  } catch (err) {
    throw new ConfigError('PROJECTOR_READ_MODELS', `cannot load ${file}: ${(err as Error).message}`);
  }
  const list = mod.readModels;
  if (!Array.isArray(list))
    throw new ConfigError('PROJECTOR_READ_MODELS', `${file} does not export an array named readModels`);
  const out = [...builtInReadModels];
  for (const m of list as ReadModel[]) {
    const what = `${file}: read model ${JSON.stringify((m as { name?: unknown })?.name)}`;
    if (typeof m?.name !== 'string' || !/^[a-z0-9_-]{1,60}$/.test(m.name))
      throw new ConfigError('PROJECTOR_READ_MODELS', `${what}: name must be 1-60 characters from [a-z0-9_-]`);
    if (out.some((o) => o.name === m.name))
      throw new ConfigError('PROJECTOR_READ_MODELS', `${what}: the name is taken`);
    if (typeof m.keyOf !== 'function' || typeof m.handlers !== 'object' || !m.entity)
      throw new ConfigError('PROJECTOR_READ_MODELS', `${what}: needs entity, keyOf and handlers`);
    if (m.onError !== undefined && m.onError !== 'stop' && m.onError !== 'skip')
      throw new ConfigError('PROJECTOR_READ_MODELS', `${what}: onError must be "stop" or "skip"`);
    out.push({ ...m, migrations: m.migrations ?? [] });
  }
  return out;
}

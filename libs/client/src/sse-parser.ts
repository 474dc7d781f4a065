import type * as EventSourceParserModule from 'eventsource-parser';

/**
 * eventsource-parser 4 is published as ES modules only. Node >= 20.19 loads it with require(), but jest's
 * CommonJS sandbox does not (it does not transform node_modules and patches `module.createRequire`), so it is
 * loaded with the require of Node's own `module` builtin. The parser keeps no global state: using Node's copy
 * is harmless.
 */
function load(): typeof EventSourceParserModule {
  const nodeModule = process.getBuiltinModule?.('node:module') as typeof import('node:module') | undefined;
  if (nodeModule) return nodeModule.createRequire(__filename)('eventsource-parser');
  return require('eventsource-parser');
}

export const createParser = load().createParser;
export type { EventSourceMessage } from 'eventsource-parser';

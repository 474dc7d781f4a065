import { createRequire } from 'node:module';
import type * as EventSourceParserModule from 'eventsource-parser';

/**
 * eventsource-parser 4 is published as ES modules only. Node >= 20.19 loads it with require(), but jest's
 * CommonJS sandbox does not (it does not transform node_modules), so it is loaded with Node's own require.
 * The parser keeps no global state: sharing Node's copy is harmless.
 */
const loaded: typeof EventSourceParserModule = createRequire(__filename)('eventsource-parser');

export const createParser = loaded.createParser;
export type { EventSourceMessage, EventSourceParser } from 'eventsource-parser';

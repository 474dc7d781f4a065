import { categoryOf, checkpointTopicFor, legalTopicName, maxTopicLength, topicFor } from './topics';

describe('Kafka sink topic naming', () => {
  it('category = the part of the stream id before the first dash, or the whole id', () => {
    expect(categoryOf('order-42')).toBe('order');
    expect(categoryOf('order-42-b')).toBe('order');
    expect(categoryOf('inventory')).toBe('inventory');
    expect(categoryOf('-x')).toBe('');
  });

  it('single mode: one topic; category mode: <topic>.<category>', () => {
    expect(topicFor('order-42', 'events', 'single')).toBe('events');
    expect(topicFor('order-42', 'events', 'category')).toBe('events.order');
    expect(topicFor('inventory', 'events', 'category')).toBe('events.inventory');
    expect(topicFor('-x', 'events', 'category')).toBe('events._');
  });

  it('maps characters Kafka does not allow to _', () => {
    expect(topicFor('tenant:a-1', 'events', 'category')).toBe('events.tenant_a');
    expect(topicFor('user@example.com-1', 'events', 'category')).toBe('events.user_example.com');
    expect(topicFor('a b/c\u00e9-1', 'events', 'category')).toBe('events.a_b_c_');
    expect(legalTopicName('.')).toBe('_');
    expect(legalTopicName('..')).toBe('__');
    expect(legalTopicName('')).toBe('_');
  });

  it('cuts long names to 249 characters with a hash of the full name', () => {
    const a = topicFor(`${'x'.repeat(300)}a-1`, 'events', 'category');
    const b = topicFor(`${'x'.repeat(300)}b-1`, 'events', 'category');
    expect(a).toHaveLength(maxTopicLength);
    expect(a).toMatch(/^[a-zA-Z0-9._-]+$/);
    expect(a).not.toBe(b);
  });

  it('the checkpoint topic cannot collide with a category topic', () => {
    expect(checkpointTopicFor('events')).toBe('events-checkpoints');
    expect(topicFor('checkpoints-1', 'events', 'category')).toBe('events.checkpoints');
  });
});

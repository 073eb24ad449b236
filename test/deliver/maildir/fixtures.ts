import type { DeliveryItem } from '../../../src/deliver/mailbox-writer.ts';

/** A small CRLF RFC 5322 message with a deterministic Message-ID, as the converter would render it. */
export function makeItem(key: string, date: Date, body = 'Hello from Symphony'): DeliveryItem {
  const messageId = `sym.${key}@archiver.example`;
  const raw = Buffer.from(
    [
      'From: "Alice Smith" <alice.smith@bank.example>',
      'To: "Bob" <bob@bank.example>',
      `Subject: Chat ${key}`,
      `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <${messageId}>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      body,
      '',
    ].join('\r\n'),
  );
  return { key, messageId, date, raw };
}

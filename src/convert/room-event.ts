/**
 * The content of a room event item (converter.ts `RoomEvent`): one sentence that says what happened and who
 * did it, and the room's properties where the event carries them. The same header block as every other item
 * comes first (body.ts), so the notice reads on its own where headers are hidden.
 */
import type { Person } from '../core/types.ts';
import type { BodyField, Bodies } from './body.ts';
import { HTML_CLOSE, HTML_OPEN, isoTime } from './body.ts';
import type { RoomEvent, RoomEventType, RoomProperties } from './converter.ts';
import { cleanHeaderText, type MailAddress } from './headers.ts';
import { escapeHtml, sanitize } from './presentation.ts';

export interface RoomEventView {
  /** X-Symphony-* headers beyond the ones every item has. */
  headers: [string, string][];
  /** Lines for the header block, after From, Time and Conversation. */
  fields: BodyField[];
  sentence: string;
  /** The room's (or chat's) properties as the event states them; empty when it states none. */
  properties: BodyField[];
}

/** The Subject `{label}`: every type but INSTANTMESSAGECREATED is about a room. */
export function roomEventLabel(type: RoomEventType): string {
  return type === 'INSTANTMESSAGECREATED' ? ' (chat event)' : ' (room event)';
}

function yesNo(v: boolean | undefined): string | undefined {
  return v === undefined ? undefined : v ? 'yes' : 'no';
}

function propertyFields(p: RoomProperties, who: (person: Person) => string): BodyField[] {
  const rows: [string, string | undefined][] = [
    ['Name', p.name === undefined ? undefined : cleanHeaderText(p.name)],
    ['Description', p.description === undefined ? undefined : cleanHeaderText(p.description)],
    ['Created by', p.creator && who(p.creator)],
    ['Created', isoTime(p.createdDate)],
    ['External', yesNo(p.external)],
    ['Cross-pod', yesNo(p.crossPod)],
    ['Public', yesNo(p.public)],
    ['Discoverable', yesNo(p.discoverable)],
    ['Read-only', yesNo(p.readOnly)],
    ['Copy-protected', yesNo(p.copyProtected)],
    ['Members can invite', yesNo(p.membersCanInvite)],
    ['Members can view history', yesNo(p.canViewHistory)],
    ['Keywords', p.keywords?.map((k) => cleanHeaderText(`${k.key}: ${k.value}`)).join('; ')],
  ];
  return rows.flatMap(([label, value]) => (value ? [{ label, value }] : []));
}

/** What the item says. `by` is the initiator; `address` gives a person's address as From and To show it. */
export function describeRoomEvent(
  event: RoomEvent,
  by: Person,
  address: (person: Person) => MailAddress,
): RoomEventView {
  const who = (p: Person): string => {
    const a = address(p);
    return `${a.name} <${a.address}>`;
  };
  const actor = who(by);
  const affected = event.affectedUser;
  const member = affected ? who(affected) : 'a member';
  const self = affected !== undefined && affected.userId === by.userId;
  const p = event.properties ?? {};
  const name = p.name === undefined ? '' : cleanHeaderText(p.name);
  const previous = event.previousName === undefined ? '' : cleanHeaderText(event.previousName);

  const headers: [string, string][] = [['X-Symphony-Event-Type', event.type]];
  const fields: BodyField[] = [{ label: 'Event', value: event.type }];
  if (affected) {
    headers.push(['X-Symphony-Affected-User-Id', cleanHeaderText(affected.userId).slice(0, 200)]);
    fields.push({ label: 'Member', value: member });
  }
  const others = (event.members ?? []).filter((m) => m.userId !== by.userId).map(who);

  const sentences: Record<RoomEventType, () => string> = {
    ROOMCREATED: () => `Room ${name ? `"${name}" ` : ''}created by ${actor}.`,
    ROOMUPDATED: () =>
      previous && name && previous !== name
        ? `Room renamed from "${previous}" to "${name}" by ${actor}.`
        : `Room properties updated by ${actor}${name ? `; the room is named "${name}"` : ''}.`,
    ROOMDEACTIVATED: () => `Room deactivated by ${actor}.`,
    ROOMREACTIVATED: () => `Room reactivated by ${actor}.`,
    USERJOINEDROOM: () => (self ? `${actor} joined the room.` : `${actor} added ${member} to the room.`),
    USERLEFTROOM: () => (self ? `${actor} left the room.` : `${actor} removed ${member} from the room.`),
    ROOMMEMBERPROMOTEDTOOWNER: () => `${actor} made ${member} an owner of the room.`,
    ROOMMEMBERDEMOTEDFROMOWNER: () => `${actor} removed ${member} as an owner of the room.`,
    INSTANTMESSAGECREATED: () => `${actor} started a chat${others.length > 0 ? ` with ${others.join(', ')}` : ''}.`,
  };
  const properties = propertyFields(p, who);
  if (event.type === 'ROOMUPDATED' && previous) properties.unshift({ label: 'Previous name', value: previous });
  return { headers, fields, sentence: sentences[event.type](), properties };
}

/** Text and HTML bodies laid out as body.ts `buildBodies` lays out a suppression notice. */
export function roomEventBodies(fields: readonly BodyField[], view: RoomEventView): Bodies {
  const heading = view.properties.length > 0 ? 'Properties as of this event:' : '';
  // A transcript entry (transcript.ts) comes without a header block.
  const block = fields.length > 0;
  const text = [
    ...(block ? [fields.map((f) => `${f.label}: ${f.value}`).join('\n') + '\n' + '-'.repeat(10)] : []),
    view.sentence,
    ...(heading ? [`${heading}\n${view.properties.map((f) => `- ${f.label}: ${f.value}`).join('\n')}`] : []),
  ];
  const html = [
    ...(block
      ? [`<p>${fields.map((f) => `<b>${escapeHtml(f.label)}:</b> ${escapeHtml(f.value)}`).join('<br>')}</p><hr>`]
      : []),
    `<p>${escapeHtml(view.sentence)}</p>`,
    ...(heading
      ? [
          `<p><b>${heading}</b></p><ul>${view.properties
            .map((f) => `<li><b>${escapeHtml(f.label)}:</b> ${escapeHtml(f.value)}</li>`)
            .join('')}</ul>`,
        ]
      : []),
  ];
  return {
    // LF here; the MIME writer turns every line end into CRLF (RFC 5322 §2.3).
    text: text.join('\n\n') + '\n',
    html: HTML_OPEN + sanitize(html.join('\n')) + HTML_CLOSE,
    images: [],
    warnings: [],
  };
}

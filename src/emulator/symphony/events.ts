/** Turns generated events into the wire `V4Event` of the datafeed and datahose (symphony-api.md §3). */
import { standardId } from '../../core/ids.ts';
import type { V4Message, V4Stream } from '../../source/symphony/api-types.ts';
import { v4UserAt } from './generate.ts';
import type { Pod, PodEvent, PodStream, PodUser, V4Event } from './types.ts';
import { membersAt, roomNameAt } from './views.ts';

function v4Stream(stream: PodStream, event: PodEvent): V4Stream {
  const out: V4Stream = {
    streamId: event.standardIds ? standardId(stream.id) : stream.id,
    streamType: stream.reportedType,
    external: stream.isExternal,
    crossPod: false,
  };
  const name = roomNameAt(stream, event.timestamp);
  if (stream.kind === 'ROOM' && name !== undefined) out.roomName = name;
  return out;
}

function roomProperties(pod: Pod, stream: PodStream, at: number): Record<string, unknown> {
  return {
    name: roomNameAt(stream, at),
    description: stream.roomDescription ?? '',
    creatorUser: v4UserAt(pod.usersById.get(stream.creatorId) as PodUser, at),
    createdDate: stream.createdDate,
    external: stream.isExternal,
    crossPod: false,
    public: stream.isPublic,
    copyProtected: false,
    readOnly: false,
    discoverable: stream.isPublic,
    membersCanInvite: true,
    keywords: [],
    canViewHistory: false,
  };
}

/** `externalRecipients` is "only present on real time messaging" (agent spec V4Message). */
function realTime(message: V4Message, stream: PodStream): V4Message {
  return { ...message, externalRecipients: stream.isExternal };
}

export function renderEvent(pod: Pod, event: PodEvent): V4Event {
  const { stream } = event;
  const user = (id: number) => v4UserAt(pod.usersById.get(id) as PodUser, event.timestamp);
  const message = event.message as V4Message;
  let payload: Record<string, unknown>;
  switch (event.type) {
    case 'MESSAGESENT':
      payload = { messageSent: { message: realTime(message, stream) } };
      break;
    case 'SHAREDPOST':
      payload = { sharedPost: { message: realTime(message, stream), sharedMessage: message.sharedMessage } };
      break;
    case 'INSTANTMESSAGECREATED':
      // `members` is "Applicable only to IM Created" (agent spec V4Stream).
      payload = {
        instantMessageCreated: {
          stream: {
            ...v4Stream(stream, event),
            members: membersAt(stream, event.timestamp).map((s) => user(s.userId)),
          },
        },
      };
      break;
    case 'ROOMCREATED':
      payload = {
        roomCreated: { stream: v4Stream(stream, event), roomProperties: roomProperties(pod, stream, event.timestamp) },
      };
      break;
    case 'ROOMUPDATED':
      payload = {
        roomUpdated: {
          stream: v4Stream(stream, event),
          newRoomProperties: roomProperties(pod, stream, event.timestamp),
        },
      };
      break;
    case 'USERJOINEDROOM':
      payload = {
        userJoinedRoom: { stream: v4Stream(stream, event), affectedUser: user(event.affectedUserId as number) },
      };
      break;
    case 'USERLEFTROOM':
      payload = {
        userLeftRoom: { stream: v4Stream(stream, event), affectedUser: user(event.affectedUserId as number) },
      };
      break;
    case 'MESSAGESUPPRESSED':
      payload = {
        messageSuppressed: {
          messageId: event.standardIds ? standardId(message.messageId) : message.messageId,
          stream: v4Stream(stream, event),
        },
      };
      break;
    case 'SYMPHONYELEMENTSACTION':
      payload = {
        symphonyElementsAction: {
          stream: v4Stream(stream, event),
          formMessageId: event.standardIds ? standardId(message.messageId) : message.messageId,
          formId: event.form?.formId,
          formValues: event.form?.values,
        },
      };
      break;
  }
  return {
    id: event.id,
    messageId: event.standardIds ? standardId(event.messageId) : event.messageId,
    timestamp: event.timestamp,
    type: event.type,
    initiator: { user: user(event.initiatorId) },
    payload,
  };
}

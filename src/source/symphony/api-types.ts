/**
 * Wire shapes of the Symphony REST API that the archiver reads, as published in the official spec
 * (`spec/symphony/agent/agent-api-public.yaml`, `spec/symphony/pod/pod-api-public.yaml`). Fields are
 * optional where the spec or real pods leave them out or null (symphony-api.md §4).
 */
export interface V4User {
  userId: number | string;
  firstName?: string | null;
  lastName?: string | null;
  displayName?: string | null;
  email?: string | null;
  username?: string | null;
}

export interface V4Stream {
  streamId: string;
  streamType?: string | null;
  roomName?: string | null;
  members?: V4User[] | null;
  external?: boolean | null;
  crossPod?: boolean | null;
}

export interface V4AttachmentInfo {
  id: string;
  name: string;
  size: number;
  images?: { id?: string; dimension?: string }[] | null;
}

export interface V4Message {
  messageId: string;
  parentMessageId?: string | null;
  timestamp: number;
  message?: string | null;
  sharedMessage?: V4Message | null;
  data?: string | null;
  attachments?: V4AttachmentInfo[] | null;
  user: V4User;
  stream: V4Stream;
  externalRecipients?: boolean | null;
  diagnostic?: string | null;
  userAgent?: string | null;
  originalFormat?: string | null;
  disclaimer?: string | null;
  sid?: string | null;
  replacing?: string | null;
  replacedBy?: string | null;
  initialTimestamp?: number | null;
  initialMessageId?: string | null;
  silent?: boolean | null;
}

/** `V2AdminStreamInfo` from `POST /pod/v2/admin/streams/list`. */
export interface V2AdminStreamInfo {
  id: string;
  isExternal?: boolean;
  isActive?: boolean;
  isPublic?: boolean;
  type?: string;
  crossPod?: boolean;
  origin?: string;
  attributes?: {
    roomName?: string;
    roomDescription?: string;
    members?: number[];
    createdByUserId?: number;
    createdDate?: number;
    lastModifiedDate?: number;
    originCompany?: string;
    originCompanyId?: number;
    membersCount?: number;
    lastMessageDate?: number;
    groupChat?: boolean;
  };
}

export interface V2AdminStreamList {
  count?: number;
  skip?: number;
  limit?: number;
  filter?: unknown;
  streams?: V2AdminStreamInfo[];
}

/** `V2MembershipList` from `GET /pod/v1/admin/stream/{id}/membership/list`. */
export interface V2MembershipList {
  count?: number;
  skip?: number;
  limit?: number;
  members?: {
    user?: {
      userId?: number;
      email?: string;
      firstName?: string;
      lastName?: string;
      displayName?: string;
      company?: string;
      companyId?: number;
      isExternal?: boolean;
    };
    isOwner?: boolean;
    isCreator?: boolean;
    joinDate?: number;
  }[];
}

/** `MemberInfo` from `GET /pod/v1/admin/room/{id}/membership/list` (a bare array): ids only, no leave date. */
export interface MemberInfo {
  id?: number | string;
  owner?: boolean;
  joinDate?: number;
  addedThroughGroups?: number[];
}

/** `UserV2` from `GET /pod/v3/users`. */
export interface UserV2 {
  id?: number;
  emailAddress?: string | null;
  firstName?: string | null;
  lastName?: string | null;
  displayName?: string | null;
  company?: string | null;
  username?: string | null;
  accountType?: string | null;
}

export interface V2UserList {
  users?: UserV2[];
  errors?: { error?: string; email?: string; id?: number }[] | null;
}

/** `V5EventList` from a Datafeed v5 or Datahose read (symphony-api.md §2.9, §2.10); events are `V4Event`s. */
export interface V5EventList {
  events?: unknown[] | null;
  ackId?: string | null;
}

/** `V5Datafeed` from `GET|POST /agent/v5/datafeeds`. */
export interface V5Datafeed {
  id?: string;
  createdAt?: number;
  type?: string;
}

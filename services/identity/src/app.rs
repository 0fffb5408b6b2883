//! The shell around identity's aggregates: load a stream, fold it, decide, append with the
//! version that was read, and retry from the top when another writer got there first.

use std::sync::Arc;

use haven_eventlog_client::{EventLog, LogError, ReadStream};
use haven_kernel::{Decider, ExpectedVersion, Position, SchoolId, StreamId, Version, fold};
use haven_proto::v1 as pb;

use crate::Error;
use haven_authz::UserId;

use crate::domain::{
    Aup, AupCommand, AupDecider, School, SchoolCommand, SchoolDecider, SchoolSystem, Subject, SubjectCommand,
    SubjectDecider, SystemCommand, SystemDecider, Trust, TrustCommand, TrustDecider, UnixTime, User, UserCommand,
    UserDecider,
};
use crate::events;
use crate::keys::SigningKey;
use crate::roster::{self, RowError};

/// What a roster import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterReport {
    /// The subjects created, in row order, with their stream versions.
    pub imported: Vec<(Subject, Version)>,
    /// One entry per refused row, by line.
    pub errors: Vec<RowError>,
}

/// How many times a command is re-decided when the stream moved under it.
const MAX_ATTEMPTS: u32 = 5;
/// Events read per page when loading a stream.
const LOAD_PAGE: u32 = 1_000;
/// The stream of the acceptable use policy (one trust per deployment).
pub const AUP_STREAM: &str = "aup-policy";
/// The stream announcing each token signing key's public half.
pub const SIGNING_KEYS_STREAM: &str = "signingkeys-identity";

/// Where new event ids come from.
#[derive(Clone, Debug)]
pub enum EventIds {
    /// A fresh UUIDv7 per event (every ordinary request).
    Fresh,
    /// UUIDv5 ids derived from a key: the same command always gets the same ids, so replaying
    /// it (the demo seed on every start) can never write twice.
    Derived { key: String },
}

impl EventIds {
    fn id(&self, index: usize) -> Vec<u8> {
        match self {
            EventIds::Fresh => uuid::Uuid::now_v7().as_bytes().to_vec(),
            EventIds::Derived { key } => {
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("haven:{key}:{index}").as_bytes())
                    .as_bytes()
                    .to_vec()
            }
        }
    }
}

/// Who asks, when, and how events are identified: everything a command's events carry
/// besides their payload.
#[derive(Clone, Debug)]
pub struct CommandContext {
    pub actor: pb::Actor,
    pub occurred_at: prost_types::Timestamp,
    pub event_ids: EventIds,
}

/// An event as the log takes it; no correlation or trace context yet.
fn proposed(
    event_id: Vec<u8>,
    event_type: &str,
    school_id: Option<&SchoolId>,
    occurred_at: prost_types::Timestamp,
    actor: pb::Actor,
    payload: Vec<u8>,
) -> pb::ProposedEvent {
    pb::ProposedEvent {
        event_id,
        event_type: event_type.to_owned(),
        schema_version: 1,
        school_id: school_id.map(ToString::to_string).unwrap_or_default(),
        occurred_at: Some(occurred_at),
        actor: Some(actor),
        correlation_id: vec![],
        causation_id: vec![],
        trace_context: None,
        payload,
    }
}

/// An event's type and protobuf payload.
type EncodedEvent = (&'static str, Vec<u8>);

/// How one aggregate's events are stored: their protobuf forms, and the school a state's
/// events belong to (the envelope's tenancy; `None` for trust-wide streams).
struct Codec<'a, D: Decider> {
    decode: fn(&pb::EventEnvelope) -> Result<D::Event, Error>,
    encode: &'a (dyn Fn(&D::Event) -> EncodedEvent + Sync),
    school: fn(&D::State) -> Option<SchoolId>,
}

/// Identity's application service.
#[derive(Clone)]
pub struct IdentityApp {
    log: Arc<dyn EventLog>,
}

impl std::fmt::Debug for IdentityApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityApp").finish_non_exhaustive()
    }
}

fn stream(category: &str, id: &str, field: &str) -> Result<StreamId, Error> {
    StreamId::new(category, id).map_err(|e| Error::invalid(field, e.to_string()))
}

impl IdentityApp {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        IdentityApp { log }
    }

    pub async fn establish_trust(&self, context: &CommandContext, command: TrustCommand) -> Result<Trust, Error> {
        let TrustCommand::Establish { trust_id, .. } = &command;
        let stream_id = stream("trust", trust_id, "trust_id")?;
        let (state, _) = self
            .execute::<TrustDecider>(
                &stream_id,
                &command,
                context,
                Codec { decode: events::decode_trust, encode: &events::encode_trust, school: |_| None },
            )
            .await?;
        state.ok_or_else(|| Error::NotFound(format!("trust {trust_id}")))
    }

    /// The global position of a trust's establishment, once established.
    pub async fn trust_position(&self, trust_id: &str) -> Result<Option<Position>, Error> {
        let stream_id = stream("trust", trust_id, "trust_id")?;
        let slice = self.log.read_stream(ReadStream::forwards(stream_id, Version(0), 1)).await?;
        Ok(slice.events.first().map(|event| Position(event.position)))
    }

    pub async fn register_school(
        &self,
        context: &CommandContext,
        command: SchoolCommand,
    ) -> Result<(School, Version), Error> {
        let SchoolCommand::Register { school_id, .. } = &command else {
            return Err(Error::invalid("command", "is not a registration"));
        };
        let school_id = school_id.clone();
        self.school_command(&school_id, context, command).await
    }

    pub async fn change_pupil_numbers(
        &self,
        context: &CommandContext,
        school_id: &SchoolId,
        pupil_count: u32,
    ) -> Result<(School, Version), Error> {
        self.school_command(school_id, context, SchoolCommand::ChangePupilNumbers { pupil_count }).await
    }

    /// A school as its stream says now, with the stream's version.
    pub async fn school(&self, school_id: &SchoolId) -> Result<Option<(School, Version)>, Error> {
        let stream_id = stream("school", school_id.as_str(), "school_id")?;
        let (history, version) = self.load(&stream_id, events::decode_school).await?;
        Ok(fold::<SchoolDecider>(&history).zip(version))
    }

    async fn school_command(
        &self,
        school_id: &SchoolId,
        context: &CommandContext,
        command: SchoolCommand,
    ) -> Result<(School, Version), Error> {
        let stream_id = stream("school", school_id.as_str(), "school_id")?;
        let (state, version) = self
            .execute::<SchoolDecider>(
                &stream_id,
                &command,
                context,
                Codec {
                    decode: events::decode_school,
                    encode: &events::encode_school,
                    school: |state| state.as_ref().map(|school| school.school_id.clone()),
                },
            )
            .await?;
        let school = state.ok_or_else(|| Error::NotFound(format!("school {school_id}")))?;
        Ok((school, version.unwrap_or(Version(0))))
    }

    /// Registers a user; the home school, when given, must exist.
    pub async fn register_user(
        &self,
        context: &CommandContext,
        command: UserCommand,
    ) -> Result<(User, Version), Error> {
        let UserCommand::Register { user_id, home_school, .. } = &command else {
            return Err(Error::invalid("command", "is not a registration"));
        };
        if let Some(school_id) = home_school {
            self.require_school(school_id, "home_school_id").await?;
        }
        let user_id = user_id.clone();
        self.user_command(context, &user_id, command).await
    }

    /// Any command on an existing user. A school-scoped grant needs the school to exist.
    pub async fn user_command(
        &self,
        context: &CommandContext,
        user_id: &UserId,
        command: UserCommand,
    ) -> Result<(User, Version), Error> {
        if let UserCommand::GrantRole { grant, .. } = &command
            && let Some(school_id) = grant.scope.school()
        {
            self.require_school(school_id, "school_id").await?;
        }
        let stream_id = stream("user", user_id.as_str(), "user_id")?;
        let encode = |event: &_| events::encode_user(user_id, event);
        let (state, version) = self
            .execute::<UserDecider>(
                &stream_id,
                &command,
                context,
                Codec {
                    decode: events::decode_user,
                    encode: &encode,
                    school: |state| state.as_ref().and_then(|user| user.home_school.clone()),
                },
            )
            .await?;
        let user = state.ok_or_else(|| Error::NotFound(format!("user {user_id}")))?;
        Ok((user, version.unwrap_or(Version(0))))
    }

    /// Accepts the AUP in force for a user.
    pub async fn accept_aup(
        &self,
        context: &CommandContext,
        user_id: &UserId,
        version: u32,
        at: UnixTime,
    ) -> Result<(User, Version), Error> {
        let current_version = self.aup().await?.map(|aup| aup.version);
        self.user_command(context, user_id, UserCommand::AcceptAup { version, current_version, at }).await
    }

    /// A user as its stream says now, with the stream's version.
    pub async fn user(&self, user_id: &UserId) -> Result<Option<(User, Version)>, Error> {
        let stream_id = stream("user", user_id.as_str(), "user_id")?;
        let (history, version) = self.load(&stream_id, events::decode_user).await?;
        Ok(fold::<UserDecider>(&history).zip(version))
    }

    /// Publishes a new AUP version.
    pub async fn publish_aup(
        &self,
        context: &CommandContext,
        version: u32,
        text_sha256: [u8; 32],
    ) -> Result<Aup, Error> {
        let stream_id = StreamId::parse(AUP_STREAM).map_err(|e| Error::invalid("aup stream", e.to_string()))?;
        let command = AupCommand::Publish { version, text_sha256 };
        let (state, _) = self
            .execute::<AupDecider>(
                &stream_id,
                &command,
                context,
                Codec { decode: events::decode_aup, encode: &events::encode_aup, school: |_| None },
            )
            .await?;
        state.ok_or_else(|| Error::NotFound("aup".into()))
    }

    /// The AUP in force, if any has been published.
    pub async fn aup(&self) -> Result<Option<Aup>, Error> {
        let stream_id = StreamId::parse(AUP_STREAM).map_err(|e| Error::invalid("aup stream", e.to_string()))?;
        let (history, _) = self.load(&stream_id, events::decode_aup).await?;
        Ok(fold::<AupDecider>(&history))
    }

    /// A command on a school system's credential; issuing needs the school to exist.
    pub async fn system_command(
        &self,
        context: &CommandContext,
        system_id: &str,
        command: SystemCommand,
    ) -> Result<SchoolSystem, Error> {
        if let SystemCommand::Issue { school_id, .. } = &command {
            self.require_school(school_id, "school_id").await?;
        }
        let stream_id = stream("system", system_id, "system_id")?;
        let encode = |event: &_| events::encode_system(system_id, event);
        let (state, _) = self
            .execute::<SystemDecider>(
                &stream_id,
                &command,
                context,
                Codec {
                    decode: events::decode_system,
                    encode: &encode,
                    school: |state| state.as_ref().map(|system| system.school_id.clone()),
                },
            )
            .await?;
        state.ok_or_else(|| Error::NotFound(format!("school system {system_id}")))
    }

    /// A school system as its stream says now.
    pub async fn system(&self, system_id: &str) -> Result<Option<SchoolSystem>, Error> {
        let stream_id = stream("system", system_id, "system_id")?;
        let (history, _) = self.load(&stream_id, events::decode_system).await?;
        Ok(fold::<SystemDecider>(&history))
    }

    /// Announces a signing key's public half in the log, once: the event id is derived from
    /// the key id and the content from the key, so announcing again on every start writes
    /// nothing new. Services in other processes learn verification keys from these events.
    pub async fn announce_signing_key(&self, key: &SigningKey) -> Result<(), Error> {
        let stream_id =
            StreamId::parse(SIGNING_KEYS_STREAM).map_err(|e| Error::invalid("signing key stream", e.to_string()))?;
        let payload =
            pb::SigningKeyRotated { key_id: key.kid.clone(), public_key_der: key.public_key_der(), retire_after: None };
        let actor = pb::Actor {
            principal_id: "haven".into(),
            kind: pb::ActorKind::System as i32,
            roles: vec!["identity".into()],
        };
        let event = proposed(
            EventIds::Derived { key: format!("signing-key:{}", key.kid) }.id(0),
            events::SIGNING_KEY_ROTATED,
            None,
            events::time_to_proto(UnixTime(key.created_at)),
            actor,
            prost::Message::encode_to_vec(&payload),
        );
        self.log.append(&stream_id, ExpectedVersion::Any, vec![event]).await?;
        Ok(())
    }

    /// A command on a subject; registering needs the school to exist.
    pub async fn subject_command(
        &self,
        context: &CommandContext,
        subject_id: &str,
        command: SubjectCommand,
    ) -> Result<(Subject, Version), Error> {
        if let SubjectCommand::Register { school_id, .. } = &command {
            self.require_school(school_id, "school_id").await?;
        }
        let stream_id = stream("subject", subject_id, "subject_id")?;
        let encode = |event: &_| events::encode_subject(subject_id, event);
        let (state, version) = self
            .execute::<SubjectDecider>(
                &stream_id,
                &command,
                context,
                Codec {
                    decode: events::decode_subject,
                    encode: &encode,
                    school: |state| state.as_ref().map(|subject| subject.school_id.clone()),
                },
            )
            .await?;
        let subject = state.ok_or_else(|| Error::NotFound(format!("subject {subject_id}")))?;
        Ok((subject, version.unwrap_or(Version(0))))
    }

    /// A subject as its stream says now.
    pub async fn subject(&self, subject_id: &str) -> Result<Option<(Subject, Version)>, Error> {
        let stream_id = stream("subject", subject_id, "subject_id")?;
        let (history, version) = self.load(&stream_id, events::decode_subject).await?;
        Ok(fold::<SubjectDecider>(&history).zip(version))
    }

    /// Records that someone read a subject's record (`subject_id`) or a school's listing
    /// (`None`), in `subjectaccess-<school>`: the audit view's answer to "who has seen this".
    pub async fn record_subject_view(
        &self,
        context: &CommandContext,
        school_id: &SchoolId,
        subject_id: Option<&str>,
        purpose: &str,
    ) -> Result<(), Error> {
        let stream_id = stream("subjectaccess", school_id.as_str(), "school_id")?;
        let payload = pb::SubjectRecordViewed {
            subject_id: subject_id.unwrap_or_default().to_owned(),
            viewer_id: context.actor.principal_id.clone(),
            purpose: purpose.to_owned(),
        };
        let event = proposed(
            context.event_ids.id(0),
            events::SUBJECT_RECORD_VIEWED,
            Some(school_id),
            context.occurred_at,
            context.actor.clone(),
            prost::Message::encode_to_vec(&payload),
        );
        self.log.append(&stream_id, ExpectedVersion::Any, vec![event]).await?;
        Ok(())
    }

    /// Imports a roster into a school: every good row a subject (one append each, so a row is
    /// all or nothing), every bad row reported. A refused file imports nothing. If the log
    /// fails part-way, the rows already imported stay and the error is returned.
    pub async fn import_roster(
        &self,
        context: &CommandContext,
        school_id: &SchoolId,
        csv: &str,
    ) -> Result<RosterReport, Error> {
        self.require_school(school_id, "school_id").await?;
        let (rows, mut errors) = roster::parse(csv).map_err(|e| Error::invalid("csv", e.to_string()))?;
        let mut imported = Vec::with_capacity(rows.len());
        for row in rows {
            let subject_id = crate::secret::random_subject_id();
            let command = SubjectCommand::Register {
                subject_id: subject_id.clone(),
                school_id: school_id.clone(),
                display_name: row.display_name,
                year_group: row.year_group,
                flags: row.flags,
                network_logins: row.network_logins,
            };
            match self.subject_command(context, &subject_id, command).await {
                Ok(subject) => imported.push(subject),
                Err(Error::Subject(refusal)) => {
                    errors.push(RowError { line: row.line, column: "row", reason: refusal.to_string() })
                }
                Err(other) => return Err(other),
            }
        }
        errors.sort_by_key(|error| error.line);
        Ok(RosterReport { imported, errors })
    }

    async fn require_school(&self, school_id: &SchoolId, field: &str) -> Result<(), Error> {
        match self.school(school_id).await? {
            Some(_) => Ok(()),
            None => Err(Error::invalid(field, format!("school {school_id} is not registered"))),
        }
    }

    /// Every event of a stream, decoded, and its last version.
    async fn load<E>(
        &self,
        stream_id: &StreamId,
        decode: fn(&pb::EventEnvelope) -> Result<E, Error>,
    ) -> Result<(Vec<E>, Option<Version>), Error> {
        let mut history = Vec::new();
        let mut from = Version(0);
        loop {
            let slice = self.log.read_stream(ReadStream::forwards(stream_id.clone(), from, LOAD_PAGE)).await?;
            for envelope in &slice.events {
                history.push(decode(envelope)?);
            }
            if slice.end_of_stream || slice.events.is_empty() {
                return Ok((history, slice.last_version));
            }
            from = Version(slice.events.last().map_or(0, |e| e.version) + 1);
        }
    }

    /// Load → fold → decide → append at the version read; on a concurrent write, again.
    async fn execute<D>(
        &self,
        stream_id: &StreamId,
        command: &D::Command,
        context: &CommandContext,
        codec: Codec<'_, D>,
    ) -> Result<(D::State, Option<Version>), Error>
    where
        D: Decider,
        Error: From<D::Error>,
    {
        for _attempt in 0..MAX_ATTEMPTS {
            let (history, version) = self.load(stream_id, codec.decode).await?;
            let state = fold::<D>(&history);
            let new_events = D::decide(&state, command)?;
            if new_events.is_empty() {
                return Ok((state, version));
            }
            let new_state = new_events.iter().fold(state, D::evolve);
            let school_id = (codec.school)(&new_state);
            let proposed = new_events
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    let (event_type, payload) = (codec.encode)(event);
                    proposed(
                        context.event_ids.id(index),
                        event_type,
                        school_id.as_ref(),
                        context.occurred_at,
                        context.actor.clone(),
                        payload,
                    )
                })
                .collect();
            let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self.log.append(stream_id, expected, proposed).await {
                Ok(outcome) => return Ok((new_state, Some(outcome.last_version))),
                Err(LogError::WrongExpectedVersion(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Contended { stream: stream_id.to_string(), attempts: MAX_ATTEMPTS })
    }
}

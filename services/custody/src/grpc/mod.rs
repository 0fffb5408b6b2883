//! `haven.v1.Custody` over gRPC. The service is served wrapped in haven-authz's `AuthLayer`,
//! which authenticates and applies the method table; each handler then checks its action
//! against the record or device it names (its school; a staff member's own confiscated device
//! is about them, and they never see its record) with `haven_authz::grpc::check` — a handler
//! reached without a caller refuses (deny by default).
//!
//! ```text
//!  request ─▶ caller ─▶ parse + name the bad field ─▶ load the record/device ─▶ check(action, its school)
//!          ─▶ CustodyApp: decide ─▶ append ─▶ response (versions, ids derived from request_id)
//! ```
//! Handlers log nothing of a request: names, learner ids and free text stay out of traces.

mod convert;

use haven_authz::grpc::{caller, check};
use haven_authz::{AccessState, Action, Caller, Resource};
use haven_kernel::Version;
use haven_proto::v1 as pb;
use haven_proto::v1::custody_server::{Custody, CustodyServer};
use tonic::{Request, Response, Status};

use self::convert::{
    derived_id, device_to_proto, invalid, optional, optional_user, person, record_to_proto, request_id, school_id,
    status, time, user_id,
};
use crate::domain::{
    CustodyCommand, CustodyRecord, Holder, Owner, RegisterCommand, ReturnRecipient, SchoolDevice, UnixTime,
};
use crate::events::{
    authority_from_proto, condition_from_proto, deletion_authority_from_proto, device_condition_from_proto,
    hold_from_proto, kind_from_proto, recipient_from_proto, return_reason_from_proto, time_to_proto, wipe_from_proto,
};
use crate::index::AllocationFilter;
use crate::{CommandContext, CustodyApp, CustodyIndex, Error};

/// The default and largest page of `ListAllocations`.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 500;

/// The gRPC face of custody.
#[derive(Clone, Debug)]
pub struct CustodyService {
    app: CustodyApp,
    index: CustodyIndex,
    /// The access facts: the AUP version in force, for allocations.
    access: AccessState,
}

fn now() -> UnixTime {
    UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64))
}

/// Who asks, now, under the client's request id.
fn context(caller: &Caller, request_id: String, at: UnixTime) -> CommandContext {
    let principal = &caller.principal;
    CommandContext {
        actor: pb::Actor {
            principal_id: principal.id.clone(),
            kind: match principal.kind {
                haven_authz::PrincipalKind::User => pb::ActorKind::User,
                haven_authz::PrincipalKind::SchoolSystem => pb::ActorKind::SchoolSystem,
            } as i32,
            roles: principal.grants.iter().map(|grant| grant.role.as_str().to_owned()).collect(),
        },
        occurred_at: time_to_proto(at),
        request_id,
    }
}

/// What a custody record is, for authorisation: its school, and (a staff member's device)
/// the person it is about.
fn of_record(record: &CustodyRecord) -> Resource {
    let resource = Resource::school(record.school_id.clone());
    match &record.from {
        Owner::Staff { user_id } => resource.about(format!("user-{user_id}")),
        Owner::Learner { .. } => resource,
    }
}

fn of_device(device: &SchoolDevice) -> Resource {
    Resource::school(device.school_id.clone())
}

impl CustodyService {
    pub fn new(app: CustodyApp, index: CustodyIndex, access: AccessState) -> Self {
        CustodyService { app, index, access }
    }

    /// The tonic server; wrap it in `haven_authz::AuthLayer` before serving.
    pub fn into_server(self) -> CustodyServer<Self> {
        CustodyServer::new(self)
    }

    /// A record, which must exist; checked for `action`.
    async fn record(&self, caller: &Caller, action: Action, custody_id: &str) -> Result<CustodyRecord, Status> {
        crate::custody_stream(custody_id).map_err(status)?;
        let (record, _) = self
            .app
            .record(custody_id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(Error::NotFound(format!("custody record {custody_id}"))))?;
        check(caller, action, &of_record(&record))?;
        Ok(record)
    }

    /// Checks `action` on the record, then records `command` built from the request.
    async fn step(
        &self,
        caller: &Caller,
        action: Action,
        raw_request_id: &str,
        custody_id: &str,
        command: impl FnOnce(&CustodyRecord, UnixTime) -> Result<CustodyCommand, Status>,
    ) -> Result<Version, Status> {
        let request_id = request_id(raw_request_id)?;
        let record = self.record(caller, action, custody_id).await?;
        let at = now();
        let command = command(&record, at)?;
        let (_, version) =
            self.app.custody_command(&context(caller, request_id, at), custody_id, command).await.map_err(status)?;
        Ok(version)
    }

    /// A device, which must exist; checked for `action`.
    async fn device(&self, caller: &Caller, action: Action, device_id: &str) -> Result<SchoolDevice, Status> {
        crate::device_stream(device_id).map_err(status)?;
        let (device, _) = self
            .app
            .device(device_id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(Error::NotFound(format!("school device {device_id}"))))?;
        check(caller, action, &of_device(&device))?;
        Ok(device)
    }

    async fn register_step(
        &self,
        caller: &Caller,
        raw_request_id: &str,
        device_id: &str,
        command: impl FnOnce(&SchoolDevice, UnixTime) -> Result<RegisterCommand, Status>,
    ) -> Result<Version, Status> {
        let request_id = request_id(raw_request_id)?;
        let device = self.device(caller, Action::ManageSchoolDevices, device_id).await?;
        let at = now();
        let command = command(&device, at)?;
        let (_, version) =
            self.app.register_command(&context(caller, request_id, at), device_id, command).await.map_err(status)?;
        Ok(version)
    }
}

#[tonic::async_trait]
impl Custody for CustodyService {
    async fn seize_device(
        &self,
        request: Request<pb::SeizeDeviceRequest>,
    ) -> Result<Response<pb::SeizeDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let school = school_id(&request.school_id, "school_id")?;
        check(&caller, Action::SeizeDevice, &Resource::school(school.clone()))?;
        let request_id = request_id(&request.request_id)?;
        let from = match (optional(request.from_subject_id), optional(request.from_user_id)) {
            (Some(subject_id), None) => Owner::Learner { subject_id },
            (None, Some(user_id)) => Owner::Staff { user_id: convert::user_id(&user_id, "from_user_id")? },
            _ => return Err(invalid("from_subject_id", "exactly one of from_subject_id and from_user_id is needed")),
        };
        let at = now();
        let custody_id = derived_id("seize", &request_id);
        let command = CustodyCommand::Seize {
            custody_id: custody_id.clone(),
            school_id: school,
            device_id: optional(request.device_id),
            device_description: request.device_description,
            from,
            seized_by: person(&request.seized_by_user_id, "seized_by_user_id", &caller)?,
            witness: optional_user(&request.witness_user_id, "witness_user_id")?,
            reason: request.reason,
            case_id: optional(request.case_id),
            return_due_at: time(request.return_due_at.as_ref())
                .ok_or_else(|| invalid("return_due_at", "is required (by default the end of the school day)"))?,
            at,
        };
        let context = context(&caller, request_id, at);
        self.app.custody_command(&context, &custody_id, command).await.map_err(status)?;
        let position = self.app.first_position(&crate::custody_stream(&custody_id).map_err(status)?).await;
        let position = position.map_err(status)?;
        Ok(Response::new(pb::SeizeDeviceResponse { custody_id, position }))
    }

    async fn seal_device(
        &self,
        request: Request<pb::SealDeviceRequest>,
    ) -> Result<Response<pb::SealDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .step(&caller, Action::RecordCustodyStep, &r.request_id, &r.custody_id, |_, at| {
                Ok(CustodyCommand::Seal {
                    seal_number: r.seal_number.clone(),
                    sealed_by: person(&r.sealed_by_user_id, "sealed_by_user_id", &caller)?,
                    witness: optional_user(&r.witness_user_id, "witness_user_id")?,
                    powered_off: r.powered_off,
                    note: r.note.clone(),
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::SealDeviceResponse { version: version.0 }))
    }

    async fn store_device(
        &self,
        request: Request<pb::StoreDeviceRequest>,
    ) -> Result<Response<pb::StoreDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .step(&caller, Action::RecordCustodyStep, &r.request_id, &r.custody_id, |_, at| {
                Ok(CustodyCommand::Store {
                    location: r.location.clone(),
                    stored_by: person(&r.stored_by_user_id, "stored_by_user_id", &caller)?,
                    witness: optional_user(&r.witness_user_id, "witness_user_id")?,
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::StoreDeviceResponse { version: version.0 }))
    }

    async fn check_seal(
        &self,
        request: Request<pb::CheckSealRequest>,
    ) -> Result<Response<pb::CheckSealResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .step(&caller, Action::RecordCustodyStep, &r.request_id, &r.custody_id, |_, at| {
                Ok(CustodyCommand::CheckSeal {
                    seal_number_found: r.seal_number.clone(),
                    condition: condition_from_proto(r.condition)
                        .ok_or_else(|| invalid("condition", "is required: intact or broken"))?,
                    opening: r.opening,
                    reason: r.reason.clone(),
                    checked_by: person(&r.checked_by_user_id, "checked_by_user_id", &caller)?,
                    witness: optional_user(&r.witness_user_id, "witness_user_id")?,
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::CheckSealResponse { version: version.0 }))
    }

    async fn search_device(
        &self,
        request: Request<pb::SearchDeviceRequest>,
    ) -> Result<Response<pb::SearchDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .step(&caller, Action::SearchDevice, &r.request_id, &r.custody_id, |_, at| {
                let searched_by = person(&r.searched_by_user_id, "searched_by_user_id", &caller)?;
                // The layer and `check` established that the caller is on the school's
                // leadership team; another searcher's roles are not known here.
                let own = caller.principal.user_id().is_some_and(|id| id.as_str() == searched_by);
                if !own {
                    return Err(invalid("searched_by_user_id", "must be the caller: the searcher records the search"));
                }
                Ok(CustodyCommand::Search {
                    searched_by,
                    searcher_is_leadership: true,
                    witness: optional_user(&r.witness_user_id, "witness_user_id")?,
                    authority: authority_from_proto(r.authority),
                    authority_detail: r.authority_detail.clone(),
                    scope: r.scope.clone(),
                    findings: r.findings.clone(),
                    imagery_viewed: r.imagery_viewed,
                    imagery_record_id: optional(r.imagery_record_id.clone()),
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::SearchDeviceResponse { version: version.0 }))
    }

    async fn quarantine_device(
        &self,
        request: Request<pb::QuarantineDeviceRequest>,
    ) -> Result<Response<pb::QuarantineDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .step(&caller, Action::HoldDevice, &r.request_id, &r.custody_id, |_, at| {
                Ok(CustodyCommand::PlaceHold {
                    kind: hold_from_proto(r.kind).ok_or_else(|| invalid("kind", "is required"))?,
                    reason: r.reason.clone(),
                    police_reference: optional(r.police_reference.clone()),
                    authorised_by: person(&r.authorised_by_user_id, "authorised_by_user_id", &caller)?,
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::QuarantineDeviceResponse { version: version.0 }))
    }

    async fn lift_hold(&self, request: Request<pb::LiftHoldRequest>) -> Result<Response<pb::LiftHoldResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .step(&caller, Action::HoldDevice, &r.request_id, &r.custody_id, |_, at| {
                Ok(CustodyCommand::LiftHold {
                    kind: hold_from_proto(r.kind).ok_or_else(|| invalid("kind", "is required"))?,
                    reason: r.reason.clone(),
                    police_reference: optional(r.police_reference.clone()),
                    lifted_by: person("", "lifted_by_user_id", &caller)?,
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::LiftHoldResponse { version: version.0 }))
    }

    async fn hand_to_police(
        &self,
        request: Request<pb::HandToPoliceRequest>,
    ) -> Result<Response<pb::HandToPoliceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .step(&caller, Action::HandDeviceToPolice, &r.request_id, &r.custody_id, |_, at| {
                Ok(CustodyCommand::HandToPolice {
                    officer: r.officer.clone(),
                    force: r.force.clone(),
                    police_reference: r.police_reference.clone(),
                    handed_over_by: person(&r.handed_over_by_user_id, "handed_over_by_user_id", &caller)?,
                    witness: optional_user(&r.witness_user_id, "witness_user_id")?,
                    seal_number: r.seal_number.clone(),
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::HandToPoliceResponse { version: version.0 }))
    }

    async fn return_device(
        &self,
        request: Request<pb::ReturnDeviceRequest>,
    ) -> Result<Response<pb::ReturnDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .step(&caller, Action::ReturnDevice, &r.request_id, &r.custody_id, |record, at| {
                let recipient = recipient_from_proto(r.recipient).ok_or_else(|| invalid("recipient", "is required"))?;
                // When the request names the owner, it must be whom the device was taken from.
                match &record.from {
                    Owner::Learner { subject_id } if !r.subject_id.is_empty() && &r.subject_id != subject_id => {
                        return Err(invalid("subject_id", "is not the learner the device was taken from"));
                    }
                    Owner::Staff { user_id } if !r.user_id.is_empty() && &r.user_id != user_id => {
                        return Err(invalid("user_id", "is not the member of staff the device was taken from"));
                    }
                    _ => {}
                }
                let collected_by = match recipient {
                    ReturnRecipient::ParentCarer => optional(r.collected_by.clone()),
                    _ => None,
                };
                Ok(CustodyCommand::Return {
                    recipient,
                    collected_by,
                    returned_by: person(&r.returned_by_user_id, "returned_by_user_id", &caller)?,
                    witness: optional_user(&r.witness_user_id, "witness_user_id")?,
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::ReturnDeviceResponse { version: version.0 }))
    }

    async fn request_content_deletion(
        &self,
        request: Request<pb::RequestContentDeletionRequest>,
    ) -> Result<Response<pb::RequestContentDeletionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let request_id = request_id(&r.request_id)?;
        let deletion_id = derived_id("deletion", &request_id);
        let version = self
            .step(&caller, Action::RecordCustodyStep, &request_id, &r.custody_id, |_, at| {
                Ok(CustodyCommand::RequestDeletion {
                    deletion_id: deletion_id.clone(),
                    authority: deletion_authority_from_proto(r.authority)
                        .ok_or_else(|| invalid("authority", "is required"))?,
                    case_id: optional(r.case_id.clone()),
                    police_reference: optional(r.police_reference.clone()),
                    description: r.description.clone(),
                    requested_by: person("", "requested_by_user_id", &caller)?,
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::RequestContentDeletionResponse { deletion_id, version: version.0 }))
    }

    async fn record_content_deletion(
        &self,
        request: Request<pb::RecordContentDeletionRequest>,
    ) -> Result<Response<pb::RecordContentDeletionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .step(&caller, Action::RecordCustodyStep, &r.request_id, &r.custody_id, |_, at| {
                Ok(CustodyCommand::RecordDeletion {
                    deletion_id: r.deletion_id.clone(),
                    deleted_by: r.deleted_by.clone(),
                    verified_by: person(&r.verified_by_user_id, "verified_by_user_id", &caller)?,
                    witness: optional_user(&r.witness_user_id, "witness_user_id")?,
                    note: r.note.clone(),
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::RecordContentDeletionResponse { version: version.0 }))
    }

    async fn get_custody_trail(
        &self,
        request: Request<pb::GetCustodyTrailRequest>,
    ) -> Result<Response<pb::GetCustodyTrailResponse>, Status> {
        let caller = caller(&request)?;
        let custody_id = request.into_inner().custody_id;
        self.record(&caller, Action::ReadCustody, &custody_id).await?;
        let (record, history) = self.app.trail(&custody_id).await.map_err(status)?;
        let version = Version(history.last().map_or(0, |(envelope, _)| envelope.version));
        let steps = history
            .iter()
            .map(|(envelope, event)| {
                let (by_user_id, witness_user_id, summary) = crate::events::describe(event);
                pb::CustodyStep {
                    position: envelope.position,
                    event_type: envelope.event_type.clone(),
                    occurred_at: Some(time_to_proto(event.at())),
                    by_user_id,
                    witness_user_id,
                    summary,
                }
            })
            .collect();
        Ok(Response::new(pb::GetCustodyTrailResponse { record: Some(record_to_proto(&record, version)), steps }))
    }

    async fn export_custody_trail(
        &self,
        request: Request<pb::ExportCustodyTrailRequest>,
    ) -> Result<Response<pb::ExportCustodyTrailResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.record(&caller, Action::ExportCustodyTrail, &r.custody_id).await?;
        let context = context(&caller, uuid::Uuid::now_v7().to_string(), now());
        let exported = self.app.export_trail(&context, &r.custody_id, &r.purpose).await.map_err(status)?;
        let trail = pb::SignedCustodyTrail {
            document: exported.signed.signed_bytes(),
            key_id: exported.signed.document.signer.key_id.clone(),
            algorithm: exported.signed.document.signer.algorithm.clone(),
            signature: hex::decode(&exported.signed.signature).unwrap_or_default(),
        };
        Ok(Response::new(pb::ExportCustodyTrailResponse {
            trail: Some(trail),
            json: exported.json,
            html: exported.html,
        }))
    }

    async fn register_school_device(
        &self,
        request: Request<pb::RegisterSchoolDeviceRequest>,
    ) -> Result<Response<pb::RegisterSchoolDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let school = school_id(&r.school_id, "school_id")?;
        check(&caller, Action::ManageSchoolDevices, &Resource::school(school.clone()))?;
        let request_id = request_id(&r.request_id)?;
        let device_id = derived_id("device", &request_id);
        let at = now();
        let command = RegisterCommand::Register {
            device_id: device_id.clone(),
            school_id: school,
            kind: kind_from_proto(r.kind).ok_or_else(|| invalid("kind", "is required"))?,
            asset_tag: r.asset_tag,
            serial_number: r.serial_number,
            model: r.model,
            managed: r.managed,
            registered_by: person("", "registered_by_user_id", &caller)?,
            at,
        };
        self.app.register_command(&context(&caller, request_id, at), &device_id, command).await.map_err(status)?;
        let position = self.app.first_position(&crate::device_stream(&device_id).map_err(status)?).await;
        let position = position.map_err(status)?;
        Ok(Response::new(pb::RegisterSchoolDeviceResponse { device_id, position }))
    }

    async fn allocate_device(
        &self,
        request: Request<pb::AllocateDeviceRequest>,
    ) -> Result<Response<pb::AllocateDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let current_aup_version = self.access.current_aup();
        let version = self
            .register_step(&caller, &r.request_id, &r.device_id, |_, at| {
                let holder = match (optional(r.user_id.clone()), optional(r.subject_id.clone())) {
                    (Some(id), None) => Holder::Staff { user_id: user_id(&id, "user_id")? },
                    (None, Some(subject_id)) => Holder::Learner { subject_id },
                    _ => return Err(invalid("user_id", "exactly one of user_id and subject_id is needed")),
                };
                Ok(RegisterCommand::Allocate {
                    holder,
                    aup_version: r.aup_version,
                    current_aup_version,
                    purpose: r.purpose.clone(),
                    expected_return_at: time(r.expected_return_at.as_ref()),
                    allocated_by: person("", "allocated_by_user_id", &caller)?,
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::AllocateDeviceResponse { version: version.0 }))
    }

    async fn return_allocated_device(
        &self,
        request: Request<pb::ReturnAllocatedDeviceRequest>,
    ) -> Result<Response<pb::ReturnAllocatedDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .register_step(&caller, &r.request_id, &r.device_id, |_, at| {
                Ok(RegisterCommand::Return {
                    reason: return_reason_from_proto(r.reason).ok_or_else(|| invalid("reason", "is required"))?,
                    condition: device_condition_from_proto(r.condition)
                        .ok_or_else(|| invalid("condition", "is required"))?,
                    received_by: person(&r.received_by_user_id, "received_by_user_id", &caller)?,
                    note: r.note.clone(),
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::ReturnAllocatedDeviceResponse { version: version.0 }))
    }

    async fn wipe_device(
        &self,
        request: Request<pb::WipeDeviceRequest>,
    ) -> Result<Response<pb::WipeDeviceResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let version = self
            .register_step(&caller, &r.request_id, &r.device_id, |_, at| {
                Ok(RegisterCommand::Wipe {
                    method: wipe_from_proto(r.method).ok_or_else(|| invalid("method", "is required"))?,
                    verified: r.verified,
                    wiped_by: person("", "wiped_by_user_id", &caller)?,
                    note: r.note.clone(),
                    at,
                })
            })
            .await?;
        Ok(Response::new(pb::WipeDeviceResponse { version: version.0 }))
    }

    async fn list_allocations(
        &self,
        request: Request<pb::ListAllocationsRequest>,
    ) -> Result<Response<pb::ListAllocationsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let school = if r.school_id.is_empty() { None } else { Some(school_id(&r.school_id, "school_id")?) };
        check(&caller, Action::ListAllocations, &Resource::in_scope(school.clone()))?;
        let limit = match r.page_size as usize {
            0 => DEFAULT_PAGE,
            size if size <= MAX_PAGE => size,
            _ => return Err(invalid("page_size", format!("must be at most {MAX_PAGE}"))),
        };
        let after = if r.page_token.is_empty() {
            None
        } else {
            crate::device_stream(&r.page_token).map_err(|_| invalid("page_token", "is not from a previous page"))?;
            Some(r.page_token.as_str())
        };
        let filter =
            AllocationFilter { school, leavers_only: r.leavers_only, overdue_only: r.overdue_only, now: now() };
        let (page, more) = self.index.allocations(&filter, after, limit);
        let next_page_token = if more {
            page.last().map(|(device, _)| device.device_id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAllocationsResponse {
            devices: page.iter().map(|(device, version)| device_to_proto(device, *version)).collect(),
            next_page_token,
        }))
    }
}

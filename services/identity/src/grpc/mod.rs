//! `haven.v1.Identity` over gRPC. The service is served wrapped in haven-authz's `AuthLayer`,
//! which authenticates and applies the method table; each handler then checks its action
//! against the resource the request names (school, owner, role) with `haven_authz::grpc::check`
//! — a handler reached without a caller refuses (deny by default).

mod convert;

use haven_authz::grpc::{caller, check};
use haven_authz::{Action, Caller, Resource, UserId};
use haven_proto::v1 as pb;
use haven_proto::v1::identity_server::{Identity, IdentityServer};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use self::convert::{
    grant, invalid, optional_school, register_entry_to_proto, school_id, school_to_proto, status, time,
    tokens_to_proto, user_id, user_to_proto,
};
use crate::domain::subject::check_subject_id;
use crate::domain::{
    SchoolCommand, Subject, SubjectCommand, SubjectFlag, SystemCommand, TrustCommand, UnixTime, User, UserCommand,
};
use crate::events::{flag_from_proto, phase_from_proto};
use crate::{Accounts, Error, IdentityApp, SchoolDirectory, SubjectDirectory, user_context};

/// The gRPC face of identity.
#[derive(Clone, Debug)]
pub struct IdentityService {
    app: IdentityApp,
    directory: SchoolDirectory,
    subjects: SubjectDirectory,
    accounts: Accounts,
}

/// The longest purpose a reader of the subject directory may give, in characters.
const MAX_PURPOSE_CHARS: usize = 200;

/// Why someone reads the protected directory: required, recorded with the access event.
fn purpose(raw: &str) -> Result<&str, Status> {
    let purpose = raw.trim();
    if purpose.is_empty() {
        return Err(invalid("purpose", "must say why the record is read"));
    }
    if purpose.chars().count() > MAX_PURPOSE_CHARS || purpose.chars().any(char::is_control) {
        return Err(invalid("purpose", "must be at most 200 characters, without control characters"));
    }
    Ok(purpose)
}

impl IdentityService {
    pub fn new(directory: SchoolDirectory, subjects: SubjectDirectory, accounts: Accounts) -> Self {
        IdentityService { app: accounts.app().clone(), directory, subjects, accounts }
    }

    /// A subject, which must exist; checked against its school for `action`.
    async fn subject(&self, caller: &Caller, action: Action, subject_id: &str) -> Result<(Subject, u64), Status> {
        if !check_subject_id(subject_id) {
            return Err(invalid("subject_id", "must be `s-` and 26 base32 characters"));
        }
        let (subject, version) = self
            .app
            .subject(subject_id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(Error::NotFound(format!("subject {subject_id}"))))?;
        check(caller, action, &Resource::school(subject.school_id.clone()))?;
        Ok((subject, version.0))
    }

    /// The tonic server; wrap it in `haven_authz::AuthLayer` before serving.
    pub fn into_server(self) -> IdentityServer<Self> {
        IdentityServer::new(self)
    }

    /// The user a request names, which must exist.
    async fn target(&self, raw: &str) -> Result<(UserId, User, u64), Status> {
        let user_id = user_id(raw)?;
        let (user, version) = self
            .app
            .user(&user_id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(Error::NotFound(format!("user {raw}"))))?;
        Ok((user_id, user, version.0))
    }

    /// A change to someone's account, checked against their home school and ownership.
    async fn user_change(
        &self,
        caller: &Caller,
        action: Action,
        raw_user_id: &str,
        resource: impl FnOnce(&User) -> Resource,
        command: UserCommand,
    ) -> Result<pb::User, Status> {
        let (user_id, user, _) = self.target(raw_user_id).await?;
        check(caller, action, &resource(&user).owned_by(user_id.principal_id()))?;
        let now = now();
        let (user, version) =
            self.app.user_command(&user_context(&caller.principal, now), &user_id, command).await.map_err(status)?;
        Ok(user_to_proto(&user, version.0, now))
    }
}

fn now() -> UnixTime {
    UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64))
}

/// The resource of something about a user: their home school (the trust when none).
fn of_user(user: &User) -> Resource {
    Resource::in_scope(user.home_school.clone())
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn establish_trust(
        &self,
        request: Request<pb::EstablishTrustRequest>,
    ) -> Result<Response<pb::EstablishTrustResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::EstablishTrust, &Resource::trust())?;
        let pb::EstablishTrustRequest { trust_id, name } = request.into_inner();
        let context = user_context(&caller.principal, now());
        let command = TrustCommand::Establish { trust_id: trust_id.clone(), name };
        self.app.establish_trust(&context, command).await.map_err(status)?;
        let position = self.app.trust_position(&trust_id).await.map_err(status)?.map_or(0, |p| p.0);
        Ok(Response::new(pb::EstablishTrustResponse { position }))
    }

    async fn register_school(
        &self,
        request: Request<pb::RegisterSchoolRequest>,
    ) -> Result<Response<pb::RegisterSchoolResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::RegisterSchool, &Resource::trust())?;
        let request = request.into_inner();
        let command = SchoolCommand::Register {
            school_id: school_id(&request.school_id, "school_id")?,
            trust_id: String::new(),
            name: request.name,
            phase: phase_from_proto(request.phase).ok_or_else(|| invalid("phase", "is required"))?,
            pupil_count: request.pupil_count,
        };
        let (school, version) =
            self.app.register_school(&user_context(&caller.principal, now()), command).await.map_err(status)?;
        Ok(Response::new(pb::RegisterSchoolResponse { school: Some(school_to_proto(&school, version.0)) }))
    }

    async fn change_pupil_numbers(
        &self,
        request: Request<pb::ChangePupilNumbersRequest>,
    ) -> Result<Response<pb::ChangePupilNumbersResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let school_id = school_id(&request.school_id, "school_id")?;
        check(&caller, Action::ChangePupilNumbers, &Resource::school(school_id.clone()))?;
        let current = self.app.school(&school_id).await.map_err(status)?;
        if let Some((_, version)) = current
            && version.0 != request.expected_version
        {
            return Err(status(Error::Contended { stream: format!("school-{school_id}"), attempts: 0 }));
        }
        let context = user_context(&caller.principal, now());
        let (school, version) =
            self.app.change_pupil_numbers(&context, &school_id, request.pupil_count).await.map_err(status)?;
        Ok(Response::new(pb::ChangePupilNumbersResponse { school: Some(school_to_proto(&school, version.0)) }))
    }

    async fn get_school(
        &self,
        request: Request<pb::GetSchoolRequest>,
    ) -> Result<Response<pb::GetSchoolResponse>, Status> {
        let raw = request.into_inner().school_id;
        let school_id = school_id(&raw, "school_id")?;
        let (school, version) = self
            .app
            .school(&school_id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(Error::NotFound(format!("school {raw}"))))?;
        Ok(Response::new(pb::GetSchoolResponse { school: Some(school_to_proto(&school, version.0)) }))
    }

    async fn list_schools(
        &self,
        _request: Request<pb::ListSchoolsRequest>,
    ) -> Result<Response<pb::ListSchoolsResponse>, Status> {
        Ok(Response::new(pb::ListSchoolsResponse { schools: convert::schools(&self.directory) }))
    }

    async fn register_user(
        &self,
        request: Request<pb::RegisterUserRequest>,
    ) -> Result<Response<pb::RegisterUserResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let home_school = optional_school(&request.home_school_id, "home_school_id")?;
        check(&caller, Action::RegisterUser, &Resource::in_scope(home_school.clone()))?;
        let now = now();
        let command = UserCommand::Register {
            user_id: user_id(&request.user_id)?,
            display_name: request.display_name,
            login: request.login,
            home_school,
            registered_by: caller.principal.id.clone(),
            at: now,
        };
        if let UserCommand::Register { login, .. } = &command
            && self.accounts.users().by_login(login).is_some()
        {
            return Err(invalid("login", "is already in use"));
        }
        let (user, version) =
            self.app.register_user(&user_context(&caller.principal, now), command).await.map_err(status)?;
        Ok(Response::new(pb::RegisterUserResponse { user: Some(user_to_proto(&user, version.0, now)) }))
    }

    async fn set_password(
        &self,
        request: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::SetPasswordResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let own = caller.principal.user_id();
        let own_request = request.user_id.is_empty() || own.as_ref().is_some_and(|id| id.as_str() == request.user_id);
        let now = now();
        let context = user_context(&caller.principal, now);
        if own_request {
            let user_id = own.ok_or_else(|| invalid("user_id", "a school system has no password"))?;
            check(&caller, Action::SetOwnPassword, &Resource::trust().owned_by(user_id.principal_id()))?;
            if request.current_password.is_empty() {
                return Err(invalid("current_password", "is required to change one's own password"));
            }
            let current = Some((request.current_password.as_str(), now));
            self.accounts.set_password(&context, &user_id, &request.new_password, current).await.map_err(status)?;
        } else {
            let (user_id, user, _) = self.target(&request.user_id).await?;
            check(&caller, Action::SetPassword, &of_user(&user).owned_by(user_id.principal_id()))?;
            self.accounts.set_password(&context, &user_id, &request.new_password, None).await.map_err(status)?;
        }
        Ok(Response::new(pb::SetPasswordResponse {}))
    }

    async fn grant_role(
        &self,
        request: Request<pb::GrantRoleRequest>,
    ) -> Result<Response<pb::GrantRoleResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let grant = grant(request.role, &request.school_id)?;
        let resource = Resource::in_scope(grant.scope.school().cloned()).granting(grant.role);
        let command = UserCommand::GrantRole {
            grant,
            granted_by: caller.principal.id.clone(),
            reason: request.reason,
            at: now(),
        };
        let user = self.user_change(&caller, Action::GrantRole, &request.user_id, |_| resource, command).await?;
        Ok(Response::new(pb::GrantRoleResponse { user: Some(user) }))
    }

    async fn revoke_role(
        &self,
        request: Request<pb::RevokeRoleRequest>,
    ) -> Result<Response<pb::RevokeRoleResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let grant = grant(request.role, &request.school_id)?;
        let resource = Resource::in_scope(grant.scope.school().cloned()).granting(grant.role);
        let command = UserCommand::RevokeRole { grant, revoked_by: caller.principal.id.clone(), at: now() };
        let user = self.user_change(&caller, Action::RevokeRole, &request.user_id, |_| resource, command).await?;
        Ok(Response::new(pb::RevokeRoleResponse { user: Some(user) }))
    }

    async fn disable_user(
        &self,
        request: Request<pb::DisableUserRequest>,
    ) -> Result<Response<pb::DisableUserResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let now = now();
        let left_on = match request.left_on.as_ref() {
            Some(_) => time(request.left_on.as_ref(), "left_on")?,
            None => now,
        };
        let command = UserCommand::Disable { disabled_by: caller.principal.id.clone(), left_on, at: now };
        let user = self.user_change(&caller, Action::DisableUser, &request.user_id, of_user, command).await?;
        Ok(Response::new(pb::DisableUserResponse { user: Some(user) }))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::GetUserResponse>, Status> {
        let caller = caller(&request)?;
        let (user_id, user, version) = self.target(&request.into_inner().user_id).await?;
        check(&caller, Action::GetUser, &of_user(&user).owned_by(user_id.principal_id()))?;
        Ok(Response::new(pb::GetUserResponse { user: Some(user_to_proto(&user, version, now())) }))
    }

    async fn list_access_register(
        &self,
        request: Request<pb::ListAccessRegisterRequest>,
    ) -> Result<Response<pb::ListAccessRegisterResponse>, Status> {
        let caller = caller(&request)?;
        let school = optional_school(&request.into_inner().school_id, "school_id")?;
        check(&caller, Action::ListAccessRegister, &Resource::in_scope(school.clone()))?;
        let entries = self.accounts.users().access_register(school.as_ref());
        Ok(Response::new(pb::ListAccessRegisterResponse {
            entries: entries.iter().map(register_entry_to_proto).collect(),
        }))
    }

    async fn publish_aup(
        &self,
        request: Request<pb::PublishAupRequest>,
    ) -> Result<Response<pb::PublishAupResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::PublishAup, &Resource::trust())?;
        let request = request.into_inner();
        if request.text.trim().is_empty() {
            return Err(invalid("text", "must not be empty"));
        }
        let text_sha256: [u8; 32] = Sha256::digest(request.text.as_bytes()).into();
        let context = user_context(&caller.principal, now());
        let aup = self.app.publish_aup(&context, request.aup_version, text_sha256).await.map_err(status)?;
        Ok(Response::new(pb::PublishAupResponse { aup_version: aup.version, text_sha256: aup.text_sha256.to_vec() }))
    }

    async fn get_aup(&self, request: Request<pb::GetAupRequest>) -> Result<Response<pb::GetAupResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::GetAup, &Resource::trust())?;
        let aup = self.app.aup().await.map_err(status)?;
        Ok(Response::new(pb::GetAupResponse {
            aup_version: aup.as_ref().map_or(0, |aup| aup.version),
            text_sha256: aup.map(|aup| aup.text_sha256.to_vec()).unwrap_or_default(),
        }))
    }

    async fn accept_aup(
        &self,
        request: Request<pb::AcceptAupRequest>,
    ) -> Result<Response<pb::AcceptAupResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::AcceptAup, &Resource::trust())?;
        let version = request.into_inner().aup_version;
        let pair = self.accounts.accept_aup(&caller.principal, version, now()).await.map_err(status)?;
        Ok(Response::new(pb::AcceptAupResponse { tokens: Some(tokens_to_proto(pair)) }))
    }

    async fn sign_in(&self, request: Request<pb::SignInRequest>) -> Result<Response<pb::SignInResponse>, Status> {
        let request = request.into_inner();
        let pair = self.accounts.sign_in(&request.login, &request.password, now()).await.map_err(status)?;
        Ok(Response::new(pb::SignInResponse { tokens: Some(tokens_to_proto(pair)) }))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        let pair = self.accounts.refresh(&request.into_inner().refresh_token, now()).await.map_err(status)?;
        Ok(Response::new(pb::RefreshTokenResponse { tokens: Some(tokens_to_proto(pair)) }))
    }

    async fn sign_out(&self, request: Request<pb::SignOutRequest>) -> Result<Response<pb::SignOutResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::SignOut, &Resource::trust())?;
        self.accounts.sign_out(&caller.principal, now()).await.map_err(status)?;
        Ok(Response::new(pb::SignOutResponse {}))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::WhoAmI, &Resource::trust())?;
        Ok(Response::new(convert::who_am_i(&caller)))
    }

    async fn get_jwks(&self, _request: Request<pb::GetJwksRequest>) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse { jwks_json: self.accounts.tokens().jwks_json(now().0) }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        let caller = caller(&request)?;
        check(&caller, Action::RotateSigningKeys, &Resource::trust())?;
        let now = now().0;
        let tokens = self.accounts.tokens();
        let key = tokens.rotate(now).map_err(|error| status(Error::from(error)))?;
        // Every key that verifies, not only the new one: announcing is idempotent, so a retry
        // after a failed append here announces what the first attempt did not.
        let verifying = tokens.verifying_keys(now);
        for verifying_key in &verifying {
            self.app.announce_signing_key(verifying_key).await.map_err(status)?;
        }
        tracing::info!(key_id = %key.kid, verifying = verifying.len(), "token signing key rotated");
        Ok(Response::new(pb::RotateSigningKeyResponse {
            key_id: key.kid,
            verifying_key_ids: verifying.into_iter().map(|k| k.kid).collect(),
        }))
    }

    async fn issue_school_system_credential(
        &self,
        request: Request<pb::IssueSchoolSystemCredentialRequest>,
    ) -> Result<Response<pb::IssueSchoolSystemCredentialResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let school_id = school_id(&request.school_id, "school_id")?;
        check(&caller, Action::ManageSchoolSystems, &Resource::school(school_id.clone()))?;
        let now = now();
        let context = user_context(&caller.principal, now);
        let secret = self
            .accounts
            .issue_system_credential(&context, &request.system_id, &school_id, now)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::IssueSchoolSystemCredentialResponse {
            client_id: request.system_id,
            client_secret: secret,
        }))
    }

    async fn revoke_school_system_credential(
        &self,
        request: Request<pb::RevokeSchoolSystemCredentialRequest>,
    ) -> Result<Response<pb::RevokeSchoolSystemCredentialResponse>, Status> {
        let caller = caller(&request)?;
        let system_id = request.into_inner().system_id;
        let system = self
            .app
            .system(&system_id)
            .await
            .map_err(status)?
            .ok_or_else(|| status(Error::NotFound(format!("school system {system_id}"))))?;
        check(&caller, Action::ManageSchoolSystems, &Resource::school(system.school_id))?;
        let command = SystemCommand::Revoke { revoked_by: caller.principal.id.clone() };
        self.app.system_command(&user_context(&caller.principal, now()), &system_id, command).await.map_err(status)?;
        Ok(Response::new(pb::RevokeSchoolSystemCredentialResponse {}))
    }

    async fn exchange_client_credentials(
        &self,
        request: Request<pb::ExchangeClientCredentialsRequest>,
    ) -> Result<Response<pb::ExchangeClientCredentialsResponse>, Status> {
        let request = request.into_inner();
        let pair = self
            .accounts
            .exchange_client_credentials(&request.client_id, &request.client_secret, now())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ExchangeClientCredentialsResponse { tokens: Some(tokens_to_proto(pair)) }))
    }

    async fn register_subject(
        &self,
        request: Request<pb::RegisterSubjectRequest>,
    ) -> Result<Response<pb::RegisterSubjectResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let school_id = school_id(&request.school_id, "school_id")?;
        check(&caller, Action::WriteSubjects, &Resource::school(school_id.clone()))?;
        let subject_id = crate::secret::random_subject_id();
        let command = SubjectCommand::Register {
            subject_id: subject_id.clone(),
            school_id,
            display_name: request.display_name,
            year_group: request.year_group,
            flags: flags(&request.flags)?,
            network_logins: request.network_logins,
        };
        let context = user_context(&caller.principal, now());
        let (subject, version) = self.app.subject_command(&context, &subject_id, command).await.map_err(status)?;
        Ok(Response::new(pb::RegisterSubjectResponse { subject: Some(convert::subject_to_proto(&subject, version.0)) }))
    }

    async fn change_subject_flags(
        &self,
        request: Request<pb::ChangeSubjectFlagsRequest>,
    ) -> Result<Response<pb::ChangeSubjectFlagsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        self.subject(&caller, Action::WriteSubjects, &request.subject_id).await?;
        let command = SubjectCommand::ChangeFlags { flags: flags(&request.flags)? };
        let context = user_context(&caller.principal, now());
        let (subject, version) =
            self.app.subject_command(&context, &request.subject_id, command).await.map_err(status)?;
        Ok(Response::new(pb::ChangeSubjectFlagsResponse {
            subject: Some(convert::subject_to_proto(&subject, version.0)),
        }))
    }

    async fn set_subject_network_logins(
        &self,
        request: Request<pb::SetSubjectNetworkLoginsRequest>,
    ) -> Result<Response<pb::SetSubjectNetworkLoginsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        self.subject(&caller, Action::SetNetworkLogins, &request.subject_id).await?;
        let command = SubjectCommand::SetNetworkLogins { network_logins: request.network_logins };
        let context = user_context(&caller.principal, now());
        let (subject, version) =
            self.app.subject_command(&context, &request.subject_id, command).await.map_err(status)?;
        Ok(Response::new(pb::SetSubjectNetworkLoginsResponse {
            subject_id: subject.subject_id,
            network_logins: subject.network_logins.into_iter().collect(),
            version: version.0,
        }))
    }

    async fn get_subject(
        &self,
        request: Request<pb::GetSubjectRequest>,
    ) -> Result<Response<pb::GetSubjectResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let purpose = purpose(&request.purpose)?;
        let (subject, version) = self.subject(&caller, Action::ReadSubjects, &request.subject_id).await?;
        let context = user_context(&caller.principal, now());
        self.app
            .record_subject_view(&context, &subject.school_id, Some(&subject.subject_id), purpose)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetSubjectResponse { subject: Some(convert::subject_to_proto(&subject, version)) }))
    }

    async fn list_subjects(
        &self,
        request: Request<pb::ListSubjectsRequest>,
    ) -> Result<Response<pb::ListSubjectsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let school_id = school_id(&request.school_id, "school_id")?;
        check(&caller, Action::ReadSubjects, &Resource::school(school_id.clone()))?;
        let purpose = purpose(&request.purpose)?;
        let context = user_context(&caller.principal, now());
        self.app.record_subject_view(&context, &school_id, None, purpose).await.map_err(status)?;
        let subjects = self.subjects.of_school(&school_id);
        Ok(Response::new(pb::ListSubjectsResponse {
            subjects: subjects.iter().map(|(subject, version)| convert::subject_to_proto(subject, version.0)).collect(),
        }))
    }

    async fn import_roster(
        &self,
        request: Request<pb::ImportRosterRequest>,
    ) -> Result<Response<pb::ImportRosterResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let school_id = school_id(&request.school_id, "school_id")?;
        check(&caller, Action::WriteSubjects, &Resource::school(school_id.clone()))?;
        let context = user_context(&caller.principal, now());
        let report = self.app.import_roster(&context, &school_id, &request.csv).await.map_err(status)?;
        Ok(Response::new(pb::ImportRosterResponse {
            imported: report
                .imported
                .iter()
                .map(|(subject, version)| convert::subject_to_proto(subject, version.0))
                .collect(),
            errors: report
                .errors
                .into_iter()
                .map(|error| pb::RosterRowError { line: error.line, column: error.column.into(), reason: error.reason })
                .collect(),
        }))
    }
}

/// Flags from a request; an unspecified or unknown one is refused.
fn flags(raw: &[i32]) -> Result<std::collections::BTreeSet<SubjectFlag>, Status> {
    raw.iter()
        .map(|flag| flag_from_proto(*flag).ok_or_else(|| invalid("flags", format!("{flag} is not a flag"))))
        .collect()
}

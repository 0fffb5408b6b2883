//! `haven.v1.Identity` over gRPC. Writes need a signed-in trust admin; sign-in arrives with
//! issue 6, so until then every write is refused (deny by default). The school directory —
//! public facts: names, phases, pupil numbers — is readable.

use haven_kernel::{ErrorCode, SchoolId};
use haven_proto::v1 as pb;
use haven_proto::v1::identity_server::{Identity, IdentityServer};
use tonic::{Code, Request, Response, Status};

use crate::domain::School;
use crate::events::phase_to_proto;
use crate::{Error, IdentityApp, SchoolDirectory};

/// The gRPC face of identity.
#[derive(Clone, Debug)]
pub struct IdentityService {
    app: IdentityApp,
    directory: SchoolDirectory,
}

impl IdentityService {
    pub fn new(app: IdentityApp, directory: SchoolDirectory) -> Self {
        IdentityService { app, directory }
    }

    pub fn into_server(self) -> IdentityServer<Self> {
        IdentityServer::new(self)
    }
}

fn status(error: Error) -> Status {
    let code = Code::from_i32(error.code().grpc_code());
    Status::new(code, error.to_string())
}

fn school_to_proto(school: &School, version: u64) -> pb::School {
    pb::School {
        school_id: school.school_id.to_string(),
        name: school.name.clone(),
        pupil_count: school.pupil_count,
        phase: phase_to_proto(school.phase) as i32,
        version,
    }
}

fn refuse_write() -> Status {
    Status::new(
        Code::from_i32(ErrorCode::Unauthenticated.grpc_code()),
        "this call needs a signed-in trust admin; Haven does not issue sign-in tokens yet, so it is refused",
    )
}

/// Calls that need sign-in, refused until it exists (deny by default).
macro_rules! refused_until_sign_in {
    ($($name:ident($request:ty) -> $response:ty;)*) => {$(
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            _request: Request<$request>,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<Response<$response>, Status>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async { Err(refuse_write()) })
        }
    )*};
}

#[tonic::async_trait]
impl Identity for IdentityService {
    refused_until_sign_in! {
        register_user(pb::RegisterUserRequest) -> pb::RegisterUserResponse;
        set_password(pb::SetPasswordRequest) -> pb::SetPasswordResponse;
        grant_role(pb::GrantRoleRequest) -> pb::GrantRoleResponse;
        revoke_role(pb::RevokeRoleRequest) -> pb::RevokeRoleResponse;
        disable_user(pb::DisableUserRequest) -> pb::DisableUserResponse;
        get_user(pb::GetUserRequest) -> pb::GetUserResponse;
        list_access_register(pb::ListAccessRegisterRequest) -> pb::ListAccessRegisterResponse;
        publish_aup(pb::PublishAupRequest) -> pb::PublishAupResponse;
        get_aup(pb::GetAupRequest) -> pb::GetAupResponse;
        accept_aup(pb::AcceptAupRequest) -> pb::AcceptAupResponse;
        sign_in(pb::SignInRequest) -> pb::SignInResponse;
        refresh_token(pb::RefreshTokenRequest) -> pb::RefreshTokenResponse;
        sign_out(pb::SignOutRequest) -> pb::SignOutResponse;
        who_am_i(pb::WhoAmIRequest) -> pb::WhoAmIResponse;
        get_jwks(pb::GetJwksRequest) -> pb::GetJwksResponse;
        issue_school_system_credential(pb::IssueSchoolSystemCredentialRequest) -> pb::IssueSchoolSystemCredentialResponse;
        revoke_school_system_credential(pb::RevokeSchoolSystemCredentialRequest) -> pb::RevokeSchoolSystemCredentialResponse;
        exchange_client_credentials(pb::ExchangeClientCredentialsRequest) -> pb::ExchangeClientCredentialsResponse;
        register_subject(pb::RegisterSubjectRequest) -> pb::RegisterSubjectResponse;
        change_subject_flags(pb::ChangeSubjectFlagsRequest) -> pb::ChangeSubjectFlagsResponse;
        get_subject(pb::GetSubjectRequest) -> pb::GetSubjectResponse;
        list_subjects(pb::ListSubjectsRequest) -> pb::ListSubjectsResponse;
        import_roster(pb::ImportRosterRequest) -> pb::ImportRosterResponse;
    }

    async fn establish_trust(
        &self,
        _request: Request<pb::EstablishTrustRequest>,
    ) -> Result<Response<pb::EstablishTrustResponse>, Status> {
        Err(refuse_write())
    }

    async fn register_school(
        &self,
        _request: Request<pb::RegisterSchoolRequest>,
    ) -> Result<Response<pb::RegisterSchoolResponse>, Status> {
        Err(refuse_write())
    }

    async fn change_pupil_numbers(
        &self,
        _request: Request<pb::ChangePupilNumbersRequest>,
    ) -> Result<Response<pb::ChangePupilNumbersResponse>, Status> {
        Err(refuse_write())
    }

    async fn get_school(
        &self,
        request: Request<pb::GetSchoolRequest>,
    ) -> Result<Response<pb::GetSchoolResponse>, Status> {
        let raw = request.into_inner().school_id;
        let school_id = SchoolId::parse(&raw).map_err(|e| status(Error::invalid("school_id", e.to_string())))?;
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
        let schools =
            self.directory.list().iter().map(|(school, version)| school_to_proto(school, version.0)).collect();
        Ok(Response::new(pb::ListSchoolsResponse { schools }))
    }
}

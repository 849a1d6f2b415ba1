from mend_common.uow import SqlUnitOfWork

from ..adapters.repository import SqlAgencyRepository, SqlReferralRepository


class ReferralsUnitOfWork(SqlUnitOfWork):
    def open_repositories(self, conn):
        self.referrals = SqlReferralRepository(conn)
        self.agencies = SqlAgencyRepository(conn)

from mend_common.uow import ChainedUnitOfWork, SqlUnitOfWork

from ..adapters.repository import ChainedReferralWrites, SqlAgencyRepository, SqlReferralRepository


class ReferralsUnitOfWork(SqlUnitOfWork):
    def open_repositories(self, conn):
        self.referrals = SqlReferralRepository(conn)
        self.agencies = SqlAgencyRepository(conn)


class ReferralsChainedUnitOfWork(ChainedUnitOfWork):
    def open_repositories(self, chain):
        self.referrals = ChainedReferralWrites(chain)

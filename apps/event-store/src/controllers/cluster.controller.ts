import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { addMemberSchema, AddMemberDto, leadershipTransferSchema, ZodBody, ZodPipe } from '../http/dto';
import { ClusterService } from '../services/cluster.service';

@ApiTags('cluster')
@Controller('cluster')
export class ClusterController {
  constructor(private readonly cluster: ClusterService) {}

  @Get()
  @ApiOperation({ summary: "This node's view of the cluster: role, term, leader, indexes, members" })
  view() {
    return this.cluster.view();
  }

  @Post('members')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Add a node: joins as learner, catches up, then is promoted by joint consensus (leader only)',
  })
  @ZodBody(addMemberSchema)
  add(@Body(new ZodPipe(addMemberSchema, 'body')) dto: AddMemberDto) {
    return this.cluster.addMember(dto);
  }

  @Delete('members/:id')
  @ApiOperation({ summary: 'Remove a member (leader only)' })
  remove(@Param('id') id: string) {
    return this.cluster.removeMember(id);
  }

  @Post('leadership-transfer')
  @HttpCode(200)
  @ApiOperation({ summary: 'Hand leadership to `to` (or the most caught-up voter)' })
  @ZodBody(leadershipTransferSchema)
  transfer(@Body(new ZodPipe(leadershipTransferSchema, 'body')) dto: { to?: string }) {
    return this.cluster.transferLeadership(dto.to);
  }

  @Post('snapshot')
  @HttpCode(200)
  @ApiOperation({ summary: "Take a snapshot of this node's state now" })
  snapshot() {
    return this.cluster.snapshot();
  }
}

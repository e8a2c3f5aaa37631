# The STORE argument of the bench programs: `memory`, `local:DIR` or `s3:ENDPOINT:BUCKET`
# (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, default "test").
defmodule Bench.StoreSpec do
  def open!("memory"), do: ObjectStoreX.new!(:memory)
  def open!("local:" <> dir), do: ObjectStoreX.new!(:local, root: dir)

  def open!("s3:" <> rest) do
    [bucket | endpoint] = rest |> String.split(":") |> Enum.reverse()

    ObjectStoreX.new!(:s3,
      bucket: bucket,
      endpoint: endpoint |> Enum.reverse() |> Enum.join(":"),
      region: "us-east-1",
      access_key_id: System.get_env("AWS_ACCESS_KEY_ID", "test"),
      secret_access_key: System.get_env("AWS_SECRET_ACCESS_KEY", "test"),
      allow_http: true
    )
  end
end
